"""The heartbeat schedule: its cron from config, its job runs and touches nothing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from flowehr_pipelines.automation.heartbeat import (
    HEARTBEAT_JOB,
    HEARTBEAT_SCHEDULE,
    build_heartbeat_defs,
)
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.definitions import build_definitions


def test_the_heartbeat_is_in_the_code_location_stopped_by_default() -> None:
    definitions = build_definitions(load_settings())
    schedule = definitions.resolve_schedule_def(HEARTBEAT_SCHEDULE)
    assert schedule.cron_schedule == "*/10 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == HEARTBEAT_JOB


def test_the_heartbeat_cron_and_status_come_from_config() -> None:
    settings = load_settings()
    automation = settings.automation.model_copy(
        update={"heartbeat_cron": "* * * * *", "heartbeat_running": True}
    )
    defs = build_heartbeat_defs(settings.model_copy(update={"automation": automation}))
    schedule = defs.resolve_schedule_def(HEARTBEAT_SCHEDULE)
    assert schedule.cron_schedule == "* * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_the_heartbeat_job_succeeds_without_touching_the_lake(flowehr_env: Path) -> None:
    defs = build_heartbeat_defs(load_settings())
    assert defs.resolve_job_def(HEARTBEAT_JOB).execute_in_process().success
    assert not (flowehr_env / "lake").exists()
