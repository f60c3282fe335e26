"""The walking skeleton end to end: small demo data through every asset, twice.

One module-scoped run feeds several tests; the second run proves re-running is safe.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from assets.ehr.bronze_view import read_current
from flowehr_pipelines.config import Settings, load_settings
from flowehr_pipelines.definitions import defs
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.run.runner import RunSummary, run_assets
from flowehr_pipelines.synthetic import write_cdc_landing, write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from resources.delta.store import DeltaTableStore
from tests.conftest import TEST_KEY
from transforms.identifiers import hmac_sha256_hex

TABLE_KEYS = {
    t: f"{t.removesuffix('s')}_id" if t != "diagnoses" else "diagnosis_id"
    for t in ("patients", "visits", "observations", "lab_results", "diagnoses")
}

pytestmark = pytest.mark.e2e

PUBLISHED_TABLES = [
    ("gold", "features", "patient_demographics"),
    ("reporting", "request_item_status"),
    ("reporting", "request_item_status_summary"),
]
NHS_NUMBER_SHAPE = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")


@dataclass
class Pipeline:
    settings: Settings
    delta: DeltaTableStore
    first: RunSummary
    second: RunSummary
    first_contents: dict[str, str]
    report_mtimes: dict[Path, float]
    source_db: Path


def content_hash(table: pa.Table, ignore: tuple[str, ...] = ()) -> str:
    """Order-independent hash of a table's rows."""
    columns = sorted(c for c in table.column_names if c not in ignore)
    rows = sorted(repr(tuple(row[c] for c in columns)) for row in table.select(columns).to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def published_contents(delta: DeltaTableStore) -> dict[str, str]:
    return {"/".join(t): content_hash(delta.read(t)) for t in PUBLISHED_TABLES}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    data_dir = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWEHR_DATA_DIR", str(data_dir))
        mp.setenv("FLOWEHR_ENV", "ci")
        mp.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
        settings = load_settings()
        start = date.today() - timedelta(days=7)
        source_db = data_dir / "source" / "ehr.db"
        source_db.parent.mkdir(parents=True)
        write_ehr_source(source_db, patients=150, days=8, start_date=start, seed=7)
        write_cdc_landing(
            Path(settings.landing_root), days=8, events_per_day=400, start_date=start, seed=7
        )
        definitions = defs()
        instance = dg.DagsterInstance.ephemeral()
        delta = build_delta_store(settings)
        first = run_assets(definitions, instance)
        contents = published_contents(delta)
        reports = Path(settings.lake_root, "reports")
        mtimes = {p: p.stat().st_mtime for p in reports.rglob("*.csv")}
        second = run_assets(definitions, instance)
        return Pipeline(settings, delta, first, second, contents, mtimes, source_db)


def test_every_asset_materialises_and_every_check_passes(pipeline: Pipeline) -> None:
    for summary in (pipeline.first, pipeline.second):
        assert summary.success, summary.failures
        # Reporting adds its staging tables and housekeeping, the 23 views and the query
        # table, the features their housekeeping and the diagnoses table and two cohorts,
        # governance the opt-out list; batch reports are written once, so the
        # batch report asset runs only when a batch is due (the first run).
        keys = {a.key for a in summary.assets} - {"reports/completed_batch_report"}
        assert "internal/national_data_opt_out" in keys
        assert len(keys) == 19 + 6 + 23 + 1 + 1 + 3 + 1
        # WARN checks may fail by design (the demo source has invalid NHS numbers, which
        # silver quarantines); every ERROR check must pass.
        assert summary.checks and all(c.passed or c.severity == "WARN" for c in summary.checks)


def test_bronze_source_tables_match_the_source_database(pipeline: Pipeline) -> None:
    with sqlite3.connect(pipeline.source_db) as db:
        for table in ("patients", "visits", "observations", "lab_results", "diagnoses"):
            expected = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            current = read_current(pipeline.delta, ("bronze", "ehr", table), [TABLE_KEYS[table]])
            assert current.num_rows == expected, table


def test_rerun_leaves_every_published_table_unchanged(pipeline: Pipeline) -> None:
    assert published_contents(pipeline.delta) == pipeline.first_contents


def test_rerun_ingests_no_landing_file_twice(pipeline: Pipeline) -> None:
    second = {a.key: a.metadata for a in pipeline.second.assets}
    history = second["bronze/transaction_history"]
    assert history["files_ingested"] == 0
    assert history["files_already_ingested"] == history["files_seen"] > 0


def test_published_tables_hold_no_nhs_numbers_or_identifiers(pipeline: Pipeline) -> None:
    with sqlite3.connect(pipeline.source_db) as db:
        nhs_numbers = {
            (n or "").replace(" ", "") for (n,) in db.execute("SELECT nhs_number FROM patients")
        }
    forbidden = {
        "nhs_number",
        "nhsnumber",
        "mrn",
        "given_name",
        "family_name",
        "date_of_birth",
        "postcode",
        "patient_id",
    }
    for table in PUBLISHED_TABLES:
        data = pipeline.delta.read(table)
        assert not forbidden & set(data.column_names), table
        for column in data.column_names:
            if pa.types.is_string(data.schema.field(column).type):
                for value in data.column(column).to_pylist():
                    assert not (value and NHS_NUMBER_SHAPE.search(value)), (table, column)
                    assert value not in nhs_numbers
    for report in Path(pipeline.settings.lake_root, "reports").rglob("*.csv"):
        assert not NHS_NUMBER_SHAPE.search(report.read_text()), report


def test_projection_hashes_nhs_numbers_with_the_secret_key(pipeline: Pipeline) -> None:
    history = pipeline.delta.read(
        ("bronze", "transaction_history"), columns=["requestitemid", "nhsnumber", "sk"]
    ).to_pylist()
    raw = {
        r["requestitemid"]: r["nhsnumber"] for r in history if r["sk"].startswith("REQUEST_ITEM#")
    }
    projected = pipeline.delta.read(("reporting", "request_item_status")).to_pylist()
    assert projected
    for row in projected[:50]:
        assert row["nhsnumberhash"] == hmac_sha256_hex(TEST_KEY.encode(), raw[row["requestitemid"]])


def test_summary_counts_every_projected_item_in_the_window(pipeline: Pipeline) -> None:
    items = pipeline.delta.read(("reporting", "request_item_status"))
    summary = pipeline.delta.read(("reporting", "request_item_status_summary")).to_pylist()
    assert sum(r["requestedcount"] for r in summary) == items.num_rows
    for row in summary:
        assert row["requestedcount"] == (
            row["deliveredcount"] + row["failedcount"] + row["outstandingcount"]
        )


def test_completed_comms_report_lists_yesterdays_channel_attempts_per_client(
    pipeline: Pipeline,
) -> None:
    tz_yesterday = pipeline.first.assets
    report_meta = next(a for a in tz_yesterday if a.key == "reports/completed_comms_report")
    report_date = report_meta.metadata["report_date"]
    items = pipeline.delta.read(("reporting", "request_item_status")).to_pylist()
    plans = pipeline.delta.read(("reporting", "request_item_plan_status")).to_pylist()
    item_clients = {(i["clientid"], i["requestitemid"]) for i in items}
    with_plans = {(p["clientid"], p["requestitemid"]) for p in plans}
    reports = sorted(
        Path(pipeline.settings.lake_root, "reports", "completed_comms_report").rglob("*.csv")
    )
    assert len(reports) == report_meta.metadata["clients"] > 0
    total = 0
    for path in reports:
        client_id, day = path.parent.parent.name, path.parent.name
        assert day == report_date
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        # NHS Notify's grain: each plan that ended that day, and each item that failed
        # that day without ever getting a plan (the demo's items are all under 90 days).
        expected = {
            (p["requestitemid"], p["requestitemplanid"])
            for p in plans
            if p["clientid"] == client_id
            and (client_id, p["requestitemid"]) in item_clients
            and str(p["completeddate"]) == report_date
            and p["status"] in ("DELIVERED", "FAILED", "SKIPPED")
        } | {
            (i["requestitemid"], "")
            for i in items
            if i["clientid"] == client_id
            and (client_id, i["requestitemid"]) not in with_plans
            and str(i["completeddate"]) == report_date
            and i["status"] == "FAILED"
        }
        assert {(r["requestitemid"], r["requestitemplanid"]) for r in rows} == expected
        assert len(rows) == len(expected)
        total += len(rows)
    assert total > 0, "demo data should complete some communications yesterday"


def test_existing_reports_are_not_rewritten(pipeline: Pipeline) -> None:
    for path, mtime in pipeline.report_mtimes.items():
        assert path.stat().st_mtime == mtime
    second = next(a for a in pipeline.second.assets if a.key == "reports/completed_comms_report")
    assert second.metadata["reports_written"] == 0


def test_changelog_load_after_source_changes_matches_the_source(pipeline: Pipeline) -> None:
    changes = apply_source_changes(
        pipeline.source_db, seed=3, update_fraction=0.05, delete_fraction=0.01, new_patients=5
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWEHR_DATA_DIR", str(pipeline.settings.data_dir))
        mp.setenv("FLOWEHR_ENV", "ci")
        summary = run_assets(defs(), dg.DagsterInstance.ephemeral(), selection="group:ehr")
    assert summary.success, summary.failures
    loads = {a.key: a.metadata for a in summary.assets if a.key.startswith("bronze/ehr/")}
    assert all(m["load_mode"] == "changelog" for m in loads.values())
    with sqlite3.connect(pipeline.source_db) as db:
        changed_rows = sum(
            db.execute(
                f"SELECT COUNT(*) FROM {t} WHERE change_seq >= ?", (changes.first_change_seq,)
            ).fetchone()[0]
            for t in ("patients", "visits", "observations", "lab_results", "diagnoses")
        )
        assert sum(m["rows_read"] for m in loads.values()) == changed_rows > 0
        for table, key in (("patients", "patient_id"), ("visits", "visit_id")):
            source = dict(db.execute(f"SELECT {key}, change_seq FROM {table}").fetchall())
            bronze = read_current(
                pipeline.delta, ("bronze", "ehr", table), [key], columns=[key, "change_seq"]
            )
            assert (
                dict(zip(bronze[key].to_pylist(), bronze["change_seq"].to_pylist(), strict=True))
                == source
            )
