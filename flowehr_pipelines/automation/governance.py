"""The opt-out refresh: the National Data Opt-out list, then every research table after it.

The nightly EHR job refreshes the list too (group ``governance`` is part of it, ahead of
the features); this schedule refreshes it on its own cadence
(``governance.opt_out.refresh_cron``) and rebuilds what reads it, so a new opt-out is
applied to the published research tables without waiting for a source change.
"""

import dagster as dg

from assets.governance.opt_out import OPT_OUT_KEY
from flowehr_pipelines.config import Settings

OPT_OUT_JOB = "opt_out_refresh_job"


def build_defs(settings: Settings) -> dg.Definitions:
    """The refresh job and its schedule (stopped unless the EHR automation runs)."""
    job = dg.define_asset_job(
        OPT_OUT_JOB,
        selection=dg.AssetSelection.assets(OPT_OUT_KEY).downstream(),
        description="Refresh the National Data Opt-out list and remove opted-out patients "
        "from every research table.",
        executor_def=dg.in_process_executor,
    )
    schedule = dg.ScheduleDefinition(
        name="opt_out_refresh_schedule",
        job=job,
        cron_schedule=settings.governance.opt_out.refresh_cron,
        execution_timezone=settings.reporting.timezone,
        description="National Data Opt-out refresh, then the feature tables and cohorts.",
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if settings.ehr.automation_running
            else dg.DefaultScheduleStatus.STOPPED
        ),
    )
    return dg.Definitions(jobs=[job], schedules=[schedule])
