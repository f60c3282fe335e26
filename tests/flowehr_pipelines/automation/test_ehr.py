"""The per-source change sensor requests a load only when the source has new changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from assets.ehr.bronze_loader import load_source_table
from assets.ehr.etl_lock import EtlLockStore, LockOwner
from flowehr_pipelines.automation.ehr import EHR_JOB, SOURCE_TAG, sensor_name
from flowehr_pipelines.config import Settings, load_settings
from flowehr_pipelines.definitions import defs
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from resources.delta.store import DeltaTableStore
from resources.sql_source import SqlSourceResource


class World:
    """The code location, its ehr source database and lake, and a Dagster instance."""

    def __init__(self, data_dir: Path) -> None:
        self.settings: Settings = load_settings()
        self.db = data_dir / "source" / "ehr.db"
        write_ehr_source(self.db, patients=15, days=3, start_date=date(2026, 3, 1), seed=9)
        self.definitions = defs()
        self.instance = dg.DagsterInstance.ephemeral()
        self.delta: DeltaTableStore = build_delta_store(self.settings)
        self.source = SqlSourceResource(
            url=self.settings.source_url(self.settings.connection("ehr"))
        )

    def tick(self) -> dg.RunRequest | dg.SkipReason:
        sensor = self.definitions.resolve_sensor_def(sensor_name("ehr"))
        with dg.build_sensor_context(
            instance=self.instance,
            resources={"ehr": self.source, "delta": self.delta},
            definitions=self.definitions,
        ) as context:
            result = sensor.evaluate_tick(context)
        if result.run_requests:
            assert len(result.run_requests) == 1
            return result.run_requests[0]
        assert result.skip_message
        return dg.SkipReason(result.skip_message)

    def load_everything(self) -> None:
        for table in self.settings.connection("ehr").tables:
            load_source_table(source_name="ehr", table=table, source=self.source, delta=self.delta)

    def source_head(self) -> int:
        import sqlite3

        with sqlite3.connect(self.db) as db:
            return int(
                db.execute(
                    "SELECT value FROM source_metadata WHERE key = 'last_change_seq'"
                ).fetchone()[0]
            )


@pytest.fixture
def world(flowehr_env: Path) -> World:
    return World(flowehr_env)


def test_sensor_requests_a_bulk_load_of_a_new_source_and_its_downstream(world: World) -> None:
    request = world.tick()
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"ehr:{world.source_head()}"
    assert request.tags[SOURCE_TAG] == "ehr"
    selected = {key.to_user_string() for key in request.asset_selection or []}
    bronze = {
        f"bronze/ehr/{t}"
        for t in ("patients", "visits", "observations", "lab_results", "diagnoses")
    }
    assert bronze <= selected
    assert {"silver/ehr/patients", "silver/ehr/observations"} <= selected
    assert "gold/features/patient_demographics" in selected
    assert not any(key.startswith("reporting/") for key in selected)
    job = world.definitions.resolve_job_def(EHR_JOB)
    assert {dg.AssetKey.from_user_string(k) for k in selected} <= set(
        job.asset_layer.executable_asset_keys
    )


def test_sensor_skips_when_bronze_is_up_to_date(world: World) -> None:
    world.load_everything()
    skip = world.tick()
    assert isinstance(skip, dg.SkipReason)
    assert skip.skip_message == "ehr: no new changes"


def test_sensor_requests_a_changelog_load_after_source_changes(world: World) -> None:
    world.load_everything()
    before = world.source_head()
    changes = apply_source_changes(world.db, seed=4, update_fraction=0.05, delete_fraction=0.02)
    assert changes.last_change_seq > before
    request = world.tick()
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"ehr:{changes.last_change_seq}"
    world.load_everything()
    assert isinstance(world.tick(), dg.SkipReason)


def test_sensor_waits_while_an_ehr_run_is_in_progress(world: World) -> None:
    run = create_run_for_test(world.instance, job_name=EHR_JOB, status=dg.DagsterRunStatus.STARTED)
    skip = world.tick()
    assert isinstance(skip, dg.SkipReason)
    assert run.run_id in (skip.skip_message or "")
    world.instance.report_run_failed(run)
    assert isinstance(world.tick(), dg.RunRequest)


def test_sensor_waits_while_a_live_load_holds_the_lock_but_not_a_stale_one(world: World) -> None:
    stale_after = timedelta(minutes=world.settings.ehr.lock_stale_after_minutes)
    locks = EtlLockStore(world.delta, stale_after=stale_after)
    owner = LockOwner(run_id="run-cli", host="etl-host", pid=7, purpose="bronze load")
    lock = locks.acquire("ehr", owner)
    skip = world.tick()
    assert isinstance(skip, dg.SkipReason)
    assert "locked by bronze load run run-cli on host etl-host (pid 7)" in (skip.skip_message or "")
    locks.release(lock)

    long_ago = datetime.now(UTC) - stale_after - timedelta(minutes=1)
    EtlLockStore(world.delta, stale_after=stale_after, clock=lambda: long_ago).acquire("ehr", owner)
    assert isinstance(world.tick(), dg.RunRequest)  # the load it requests breaks the lock


def test_ehr_automation_starts_stopped_unless_config_turns_it_on() -> None:
    from flowehr_pipelines.automation.ehr import build_defs

    settings = load_settings()
    for running, schedule_status, sensor_status in (
        (False, dg.DefaultScheduleStatus.STOPPED, dg.DefaultSensorStatus.STOPPED),
        (True, dg.DefaultScheduleStatus.RUNNING, dg.DefaultSensorStatus.RUNNING),
    ):
        tuned = settings.model_copy(
            update={"ehr": settings.ehr.model_copy(update={"automation_running": running})}
        )
        automation = build_defs(tuned)
        for schedule in automation.schedules or []:
            assert isinstance(schedule, dg.ScheduleDefinition)
            assert schedule.default_status == schedule_status
        for sensor in automation.sensors or []:
            assert isinstance(sensor, dg.SensorDefinition)
            assert sensor.default_status == sensor_status
