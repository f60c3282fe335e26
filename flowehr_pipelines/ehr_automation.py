"""Jobs, schedules and sensors of the EHR and feature domains."""

import dagster as dg

from flowehr_pipelines.config import Settings

EHR_JOB = "ehr_job"


def build_defs(settings: Settings) -> dg.Definitions:
    """The EHR job and its nightly schedule."""
    ehr_job = dg.define_asset_job(
        EHR_JOB,
        selection=dg.AssetSelection.groups("ehr", "features"),
        description="Load EHR sources into bronze, then rebuild silver tables and features.",
        executor_def=dg.in_process_executor,
    )
    nightly = dg.ScheduleDefinition(
        name="ehr_daily_schedule",
        job=ehr_job,
        cron_schedule="0 3 * * *",
        execution_timezone=settings.reporting.timezone,
        description="Nightly EHR changelog load and feature rebuild at 03:00 UK time.",
    )
    return dg.Definitions(jobs=[ehr_job], schedules=[nightly])
