"""Jobs and schedules: what runs together, and when.

Every job runs in process: a local run shares one SparkSession across its steps,
which the multiprocess executor would start afresh for every step.
"""

import dagster as dg

from flowehr_pipelines.config import Settings

ALL_ASSETS_JOB = "all_assets_job"
EHR_JOB = "ehr_job"
REPORTING_JOB = "reporting_job"


def build_job_defs(settings: Settings) -> dg.Definitions:
    """The main jobs and their Europe/London schedules."""
    tz = settings.reporting.timezone
    all_assets = dg.define_asset_job(
        ALL_ASSETS_JOB,
        selection=dg.AssetSelection.all(),
        description="Materialise the whole graph: EHR sources to features, CDC log to reports.",
        executor_def=dg.in_process_executor,
    )
    ehr_job = dg.define_asset_job(
        EHR_JOB,
        selection=dg.AssetSelection.groups("ehr", "features"),
        description="Load EHR sources into bronze, then rebuild silver tables and features.",
        executor_def=dg.in_process_executor,
    )
    reporting_job = dg.define_asset_job(
        REPORTING_JOB,
        selection=dg.AssetSelection.groups("reporting"),
        description="Ingest landed CDC files, then pass-1 projections and pass-2 aggregations.",
        executor_def=dg.in_process_executor,
    )
    schedules = [
        dg.ScheduleDefinition(
            name="reporting_ingestion_schedule",
            job=reporting_job,
            cron_schedule="0 1,4,8-18 * * *",
            execution_timezone=tz,
            description="NHS Notify cadence: 01:00, 04:00 and hourly 08:00-18:00 UK time.",
        ),
        dg.ScheduleDefinition(
            name="ehr_daily_schedule",
            job=ehr_job,
            cron_schedule="0 3 * * *",
            execution_timezone=tz,
            description="Nightly EHR changelog load and feature rebuild at 03:00 UK time.",
        ),
    ]
    return dg.Definitions(jobs=[all_assets, ehr_job, reporting_job], schedules=schedules)
