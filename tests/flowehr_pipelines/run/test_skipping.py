"""flowehr run skips unchanged work: a rerun with nothing new writes nothing and starts no
JVM; a one-row change in a source table recomputes only what reads that table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.definitions import defs
from flowehr_pipelines.run.runner import RunSummary, format_summary, run_assets
from flowehr_pipelines.synthetic import write_cdc_landing, write_ehr_source
from resources.spark import SparkResource
from tests.conftest import TEST_KEY

# A whole first run and two reruns (~1 min): with the other whole-run trials in make test-long.
pytestmark = [pytest.mark.e2e, pytest.mark.long]

DIAGNOSES = dg.AssetKey(["bronze", "ehr", "diagnoses"])


def delta_versions(lake: Path) -> dict[str, int]:
    """Every Delta table under the lake and its newest version, from its ``_delta_log``."""
    versions = {}
    for log in lake.rglob("_delta_log"):
        commits = [int(p.name.split(".")[0]) for p in log.glob("*.json") if p.name[0].isdigit()]
        versions[str(log.parent.relative_to(lake))] = max(commits, default=-1)
    return versions


@dataclass
class World:
    definitions: dg.Definitions
    instance: dg.DagsterInstance
    lake: Path
    source_db: Path
    first: RunSummary


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("skipping")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWEHR_DATA_DIR", str(data_dir))
        mp.setenv("FLOWEHR_ENV", "ci")
        mp.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
        settings = load_settings()
        start = date.today() - timedelta(days=3)
        source_db = data_dir / "source" / "ehr.db"
        source_db.parent.mkdir(parents=True)
        write_ehr_source(source_db, patients=60, days=4, start_date=start, seed=11)
        write_cdc_landing(
            Path(settings.landing_root), days=4, events_per_day=150, start_date=start, seed=11
        )
        definitions = defs()
        (data_dir / "dagster_home").mkdir()
        with dg.DagsterInstance.local_temp(str(data_dir / "dagster_home")) as instance:
            first = run_assets(definitions, instance, concurrent=False, skip_unchanged=True)
            yield World(definitions, instance, Path(settings.lake_root), source_db, first)


@pytest.fixture
def spark_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any start of the Spark session or of its background warm-up."""
    calls: list[str] = []

    def session(self: SparkResource) -> None:
        calls.append("session")
        raise AssertionError("the Spark session was asked for")

    monkeypatch.setattr(SparkResource, "session", property(session))
    monkeypatch.setattr(SparkResource, "start_in_background", lambda self: calls.append("warm-up"))
    return calls


def test_first_run_materialises_everything(world: World) -> None:
    assert world.first.success, world.first.failures
    job = world.definitions.resolve_job_def(ALL_ASSETS_JOB)
    assert {a.key for a in world.first.assets} >= {
        k.to_user_string() for k in job.asset_layer.selected_asset_keys
    }


def amend_first_row(world: World, table: str, key: str, assignment: str) -> None:
    """One EHR edit with the source's next change number, as the source records one."""
    with sqlite3.connect(world.source_db) as db:
        last = int(
            db.execute(
                "SELECT value FROM source_metadata WHERE key = 'last_change_seq'"
            ).fetchone()[0]
        )
        db.execute(
            f"UPDATE {table} SET {assignment}, change_seq = ? "
            f"WHERE {key} = (SELECT MIN({key}) FROM {table})",
            (last + 1,),
        )
        db.execute(
            "UPDATE source_metadata SET value = ? WHERE key = 'last_change_seq'", (str(last + 1),)
        )


def test_a_change_right_after_the_first_run_is_not_missed(world: World) -> None:
    # The first run's own materialisations and this change must not meet on one
    # evaluation (the cursor is settled after each run), or the change would wait.
    amend_first_row(world, "lab_results", "lab_result_id", "unit = unit")
    summary = run_assets(world.definitions, world.instance, concurrent=False, skip_unchanged=True)
    assert summary.success, summary.failures
    ran = {a.key for a in summary.assets}
    assert {"bronze/ehr/lab_results", "silver/ehr/lab_results"} <= ran
    assert "bronze/ehr/diagnoses" not in ran


def test_unchanged_rerun_writes_no_delta_version_and_starts_no_spark(
    world: World, spark_calls: list[str]
) -> None:
    before = delta_versions(world.lake)
    summary = run_assets(world.definitions, world.instance, concurrent=False, skip_unchanged=True)
    assert summary.success, summary.failures
    # The report partitions decide for themselves (due ones only, no file rewritten).
    assert {a.key.partition("/")[0] for a in summary.assets} <= {"reports"}
    assert all(not a.metadata.get("reports_written") for a in summary.assets)
    assert delta_versions(world.lake) == before
    assert spark_calls == []
    text = format_summary(summary)
    assert "inputs unchanged since run" in text
    assert "observe sources, decide what runs" in text


def test_one_row_change_recomputes_only_what_reads_that_table(world: World) -> None:
    amend_first_row(world, "diagnoses", "diagnosis_id", "description = description || ' (amended)'")
    graph = world.definitions.resolve_asset_graph()
    downstream = {
        k.to_user_string() for k in dg.AssetSelection.assets(DIAGNOSES).downstream().resolve(graph)
    }
    summary = run_assets(world.definitions, world.instance, concurrent=False, skip_unchanged=True)
    assert summary.success, summary.failures
    # Report partitions are time-driven and decide for themselves (as in the rerun above).
    ran = {a.key for a in summary.assets if not a.key.startswith("reports/")}
    assert {"bronze/ehr/diagnoses", "silver/ehr/diagnoses"} <= ran
    assert ran <= downstream, ran - downstream
