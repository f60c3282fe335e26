"""Spark steps' progress lines: the running stage from a real session, and a silver step's
phases as log events."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from assets.ehr.bronze_loader import load_source_table
from assets.ehr.settings import SourceTable
from assets.ehr.silver import SILVER_TABLES, build_silver_table_asset
from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.ehr_schema import TABLES
from resources import progress
from resources.progress import spark_status
from resources.pseudonymiser import Pseudonymiser
from resources.spark import SparkResource, build_local_spark_session
from resources.sql_source import SqlSourceResource
from tests.conftest import TEST_KEY
from tests.lakes import local_store

SPARK = SparkResource(master="local[1]", conf={"spark.sql.shuffle.partitions": "1"})


def _held_until(release: str) -> Callable[[Iterable[int]], Iterator[bool]]:
    """A Spark job whose one task waits for a file: a stage that stays running."""

    def wait(rows: Iterable[int]) -> Iterator[bool]:
        for _ in range(3000):  # bounded: a broken test ends, it does not hang
            if Path(release).exists():
                break
            time.sleep(0.01)
        yield from (True for _ in rows)

    return wait


def test_spark_status_shows_the_running_stage_and_its_tasks(tmp_path: Path) -> None:
    session = build_local_spark_session("local[1]", "flowehr-tests", {})
    status = spark_status(session)
    assert status is not None
    release = tmp_path / "release"
    job = threading.Thread(
        target=lambda: (
            session.sparkContext.parallelize([1, 2], 1)
            .mapPartitions(_held_until(str(release)))
            .collect()
        ),
        daemon=True,
    )
    job.start()
    seen = None
    try:
        for _ in range(3000):
            seen = status()
            if seen and seen.endswith("1 running"):  # the stage starts before its task
                break
            time.sleep(0.01)
    finally:
        release.touch()
        job.join()
    assert seen is not None and re.fullmatch(r"Spark stage \d+: 0 of 1 tasks done, 1 running", seen)
    assert status() == "no Spark stage running"


def test_a_silver_step_logs_its_phases_as_log_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "DEFAULT_INTERVAL_SECONDS", 0.0)  # a line per phase
    db = tmp_path / "ehr.db"
    write_ehr_source(db, patients=20, days=2, start_date=date(2026, 3, 1), seed=3)
    delta = local_store(tmp_path / "lake")
    source = SqlSourceResource(url=f"sqlite:///{db}")
    table = SourceTable(name="patients", primary_key=[TABLES["patients"][0]])
    load_source_table(source_name="ehr", table=table, source=source, delta=delta)
    patients = next(t for t in SILVER_TABLES if t.name == "patients")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [build_silver_table_asset(table=patients)],
        resources={
            "spark": SPARK,
            "delta": delta,
            "pseudonymiser": Pseudonymiser(key=TEST_KEY),
        },
        instance=instance,
    )
    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id) if not e.is_dagster_event]
    lines = [m for m in messages if m.startswith("progress silver/ehr/patients: ")]
    for phase in ("reading bronze", "computing clean rows on Spark", "merging into silver"):
        assert any(line.startswith(f"progress silver/ehr/patients: {phase}, ") for line in lines)
    assert all(line.endswith(" elapsed") for line in lines)
