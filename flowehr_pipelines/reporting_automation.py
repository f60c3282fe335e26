"""Jobs, schedules and sensors of the reporting domain, on NHS Notify's cadence."""

import dagster as dg

from flowehr_pipelines.config import Settings

REPORTING_JOB = "reporting_job"


def build_defs(settings: Settings) -> dg.Definitions:
    """The reporting ingestion job and its Europe/London schedule."""
    reporting_job = dg.define_asset_job(
        REPORTING_JOB,
        selection=dg.AssetSelection.groups("reporting"),
        description="Ingest landed CDC files, then pass-1 projections and pass-2 aggregations.",
        executor_def=dg.in_process_executor,
    )
    ingestion = dg.ScheduleDefinition(
        name="reporting_ingestion_schedule",
        job=reporting_job,
        cron_schedule="0 1,4,8-18 * * *",
        execution_timezone=settings.reporting.timezone,
        description="NHS Notify cadence: 01:00, 04:00 and hourly 08:00-18:00 UK time.",
    )
    return dg.Definitions(jobs=[reporting_job], schedules=[ingestion])
