"""The main job: the whole asset graph, in one process.

Every job here runs in process: a local run shares one SparkSession across its steps,
which the multiprocess executor would start afresh for every step. Domain jobs,
schedules and sensors live beside their domain (``automation.ehr``,
``automation.reporting``).
"""

import dagster as dg

from assets.sources import source_dependencies
from flowehr_pipelines.automation.heartbeat import build_heartbeat_defs
from flowehr_pipelines.automation.reporting import separately_run
from flowehr_pipelines.automation.run_conditions import OBSERVE_SOURCES_JOB
from flowehr_pipelines.config import Settings

ALL_ASSETS_JOB = "all_assets_job"


def build_job_defs(settings: Settings) -> dg.Definitions:
    """The job that materialises everything, as ``flowehr run`` does, and the heartbeat."""
    all_assets = dg.define_asset_job(
        ALL_ASSETS_JOB,
        # Partitioned reports and watchdog checks run separately (flowehr run catches the
        # reports up after this job; see automation.reporting).
        selection=dg.AssetSelection.all() - separately_run(),
        description="Materialise the whole graph: EHR sources to features, CDC log to reports.",
        executor_def=dg.in_process_executor,
    )
    # flowehr run observes the inputs read from outside the lake before it decides what to run.
    observe_sources = dg.define_asset_job(
        OBSERVE_SOURCES_JOB,
        selection=dg.AssetSelection.assets(*source_dependencies(settings).values()),
        description="Record a data version for every input read from outside the lake.",
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions.merge(
        dg.Definitions(jobs=[all_assets, observe_sources]), build_heartbeat_defs(settings)
    )
