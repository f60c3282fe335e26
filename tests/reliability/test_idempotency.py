"""Idempotency: materialising everything twice leaves every table and report as it was.

The whole graph, including the report partitions due now, runs twice as ``flowehr run``
does (``run_assets``) on small demo data. Every Delta table in every zone must hold
the same rows after the second run (bookkeeping columns aside, each named with its
reason in ``tests.reliability.lake``), and every report file must be byte-identical
and untouched. The lake the two runs leave is also scanned for patient identifiers,
one more data scale beside ``test_privacy``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from flowehr_pipelines.config import load_settings
from flowehr_pipelines.definitions import defs
from flowehr_pipelines.privacy_scan import ScanResult
from flowehr_pipelines.privacy_scan_lake import scan_lake
from flowehr_pipelines.run.runner import RunSummary, run_assets
from flowehr_pipelines.synthetic import write_cdc_landing, write_ehr_source
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.reliability import lake

# Whole runs of the graph, minutes each: make test-long (run by .ci/run after make test).
pytestmark = [pytest.mark.reliability, pytest.mark.long]

ZONES = ("bronze", "silver", "gold", "reporting", "internal")
ARTIFACT = REPO_ROOT / "test-artifacts" / "reliability" / "idempotency.json"


@dataclass
class TwoRuns:
    lake_root: Path
    first: RunSummary
    second: RunSummary
    tables_after_first: dict[str, str]
    tables_after_second: dict[str, str]
    reports_after_first: dict[str, lake.ReportFile]
    reports_after_second: dict[str, lake.ReportFile]
    privacy: ScanResult


@pytest.fixture(scope="module")
def two_runs() -> Iterator[TwoRuns]:
    with lake.private_directory("idempotency") as data_dir:
        yield run_twice(data_dir)


def run_twice(data_dir: Path) -> TwoRuns:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWEHR_DATA_DIR", str(data_dir))
        mp.setenv("FLOWEHR_ENV", "ci")
        mp.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
        mp.delenv("FLOWEHR_LAKE_ROOT", raising=False)
        settings = load_settings()
        start = date.today() - timedelta(days=3)
        source_db = data_dir / "source" / "ehr.db"
        source_db.parent.mkdir(parents=True)
        write_ehr_source(source_db, patients=120, days=4, start_date=start, seed=11)
        write_cdc_landing(
            Path(settings.landing_root), days=4, events_per_day=300, start_date=start, seed=11
        )
        lake_root = Path(settings.lake_root)
        definitions = defs()
        instance = dg.DagsterInstance.ephemeral()
        first = run_assets(definitions, instance)
        tables_first = lake.table_hashes(lake_root)
        reports_first = lake.report_files(lake_root)
        second = run_assets(definitions, instance)
        _, privacy = scan_lake(settings)
        runs = TwoRuns(
            lake_root,
            first,
            second,
            tables_first,
            lake.table_hashes(lake_root),
            reports_first,
            lake.report_files(lake_root),
            privacy,
        )
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(
        json.dumps(
            {
                "tables_compared": len(runs.tables_after_first),
                "run_log_tables": sorted(lake.RUN_LOG_TABLES),
                "report_files_compared": len(runs.reports_after_first),
                "tables_differing": lake.differing(
                    runs.tables_after_first, runs.tables_after_second
                ),
                "privacy_scan": {
                    "patients": 120,
                    "tables_scanned": len(runs.privacy.tables),
                    "files_scanned": len(runs.privacy.files),
                    "leaks": len(runs.privacy.findings),
                },
            },
            indent=2,
        )
    )
    return runs


def test_both_runs_succeed(two_runs: TwoRuns) -> None:
    assert two_runs.first.success, two_runs.first.failures
    assert two_runs.second.success, two_runs.second.failures


def test_every_zone_and_the_quarantine_tables_are_compared(two_runs: TwoRuns) -> None:
    names = set(two_runs.tables_after_first) | set(lake.RUN_LOG_TABLES)
    assert names == set(lake.delta_tables(two_runs.lake_root))
    assert {name.split("/")[0] for name in names} >= set(ZONES)
    assert any("quarantine" in name for name in names)
    assert {"internal/etl_state", "internal/etl_locks"} <= names


def test_second_run_leaves_every_table_unchanged(two_runs: TwoRuns) -> None:
    changed = lake.differing(two_runs.tables_after_first, two_runs.tables_after_second)
    assert changed == [], f"tables changed by a re-run: {changed}"


def test_no_lock_is_left_held(two_runs: TwoRuns) -> None:
    assert lake.row_counts(two_runs.lake_root, ["internal/etl_locks"]) == {"internal/etl_locks": 0}


@pytest.mark.parametrize(
    "log", ["internal/reporting_housekeeping", "internal/feature_housekeeping"]
)
def test_run_logs_record_the_same_work_each_run(two_runs: TwoRuns, log: str) -> None:
    entries = lake.run_log_entries(two_runs.lake_root, log, ["table_name", "retention_hours"])
    assert len(entries) == 2
    first, second = entries.values()
    assert first == second and first


def test_reports_are_byte_identical_and_not_rewritten(two_runs: TwoRuns) -> None:
    assert two_runs.reports_after_first, "the demo data should yield reports"
    assert any(name.endswith(".csv") for name in two_runs.reports_after_first)
    assert two_runs.reports_after_second == two_runs.reports_after_first
    assert lake.temp_files(two_runs.lake_root) == []


def test_published_zones_hold_no_patient_identifier_after_two_runs(two_runs: TwoRuns) -> None:
    assert two_runs.privacy.tables and two_runs.privacy.files
    assert two_runs.privacy.findings == [], [f.describe() for f in two_runs.privacy.findings]
