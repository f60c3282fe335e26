"""The FlowEHR Pipelines code location.

Settings are read once when Dagster calls ``defs()``, not when this module is imported,
so a changed environment takes effect on the next code-location reload.
"""

import dagster as dg

from assets import housekeeping, sources
from assets.ehr import bronze as ehr
from assets.ehr import silver
from assets.features import cohorts
from assets.features import tables as features
from assets.fhir import definitions as fhir
from assets.governance import opt_out
from assets.reporting import staging as reporting
from assets.reports import definitions as reports
from flowehr_pipelines.automation import ehr as ehr_automation
from flowehr_pipelines.automation import governance as governance_automation
from flowehr_pipelines.automation import reporting as reporting_automation
from flowehr_pipelines.automation.jobs import build_job_defs
from flowehr_pipelines.automation.policy import apply_automation_policy
from flowehr_pipelines.catalogue import attach_column_schemas
from flowehr_pipelines.config import Settings, load_settings
from flowehr_pipelines.console_logger import one_line_console_logger
from flowehr_pipelines.deployment import build_resources


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every domain's definitions for one deployment, with the catalogue and policy on."""
    merged = dg.Definitions.merge(
        ehr.build_defs(settings),
        silver.build_defs(settings, pds_verified=settings.pds.enabled),
        fhir.build_defs(settings),
        opt_out.build_defs(settings),
        features.build_defs(settings),
        cohorts.build_defs(settings.governance.disclosure.policy()),
        reporting.build_defs(settings),
        reports.build_defs(settings),
        housekeeping.build_defs(settings),
        sources.build_defs(settings),
        build_job_defs(settings),
        ehr_automation.build_defs(settings),
        governance_automation.build_defs(settings),
        reporting_automation.build_defs(settings),
        # UI-launched materialisations run in process too: one JVM per run, not per step.
        dg.Definitions(
            resources=build_resources(settings),
            executor=dg.in_process_executor,
            loggers={"console": one_line_console_logger},
        ),
    )
    # The ingestion assets depend on the observable sources of what they read.
    merged = sources.with_source_dependencies(merged, settings)
    return apply_automation_policy(attach_column_schemas(merged), settings)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
