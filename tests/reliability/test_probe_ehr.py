"""The outside probe's EHR-load failures, each kept as a case with the probe's input.

Text in a source's ``change_seq`` failed the whole EHR load with a message naming neither
table nor column; a fractional ``change_seq`` was skipped for good while ``etl
head-state`` showed lag 0; an SpO2 of 97.5 in an integer column was stored as 97; and a
dropped source ``postcode`` column emptied ``postcode_district`` for every changed
patient without a word. Each must end as a quarantined row naming table, key and column,
or as one line naming the table and column and the way out; the rest of the source still
loads, and a rerun after fixing the input succeeds. A JSON summary goes to
``test-artifacts/reliability/probe_ehr.json``.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from assets.ehr.bronze import build_source_defs
from assets.ehr.bronze_loader import SchemaDriftError, load_source_table
from assets.ehr.bronze_view import read_current
from assets.ehr.change_batches import load_quarantine_path
from assets.ehr.etl_state import EtlStateStore, table_lags
from assets.ehr.settings import EhrSettings, SourceTable
from flowehr_pipelines.cli import main
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.synthetic import write_ehr_source
from resources.delta.store import DeltaTableStore
from tests.assets.ehr.test_ehr_ingestion import connection, load_all, source
from tests.reliability.probe_summary import probe_summary

pytestmark = pytest.mark.reliability

held, summary = probe_summary("probe_ehr")


@pytest.fixture
def db(flowehr_env: Path) -> Path:
    """The configured embedded source, loaded once into bronze."""
    path = flowehr_env / "source" / "ehr.db"
    write_ehr_source(path, patients=20, days=3, start_date=date(2026, 3, 1), seed=21)
    return path


@pytest.fixture
def delta(db: Path) -> DeltaTableStore:
    store = build_delta_store(load_settings())
    load_all(db, store)
    return store


def execute(db: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql, params)


def head(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT MAX(change_seq) FROM {table}").fetchone()[0])


def set_aside(delta: DeltaTableStore, table: str) -> list[dict[str, Any]]:
    found = delta.read_or_none(load_quarantine_path("ehr", table))
    return [] if found is None else found.to_pylist()


def patient(delta: DeltaTableStore, patient_id: int) -> dict[str, Any]:
    rows = read_current(delta, ("bronze", "ehr", "patients"), ["patient_id"]).to_pylist()
    return next(r for r in rows if r["patient_id"] == patient_id)


def test_text_change_number_is_set_aside_and_every_other_row_loads(
    db: Path, delta: DeltaTableStore
) -> None:
    top = head(db, "patients")
    execute(db, "UPDATE patients SET change_seq = 'abc', given_name = 'X' WHERE patient_id = 3")
    execute(
        db, "UPDATE patients SET given_name = 'Y', change_seq = ? WHERE patient_id = 4", top + 1
    )

    results = load_all(db, delta)
    assert results["patients"].changelog_after == top + 1
    assert patient(delta, 4)["given_name"] == "Y"
    assert set_aside(delta, "patients") == [
        {
            "source_table": "patients",
            "record_key": "3",
            "change_seq": None,
            "reason": "unusable change number in source: change_seq is not a number (str)",
        }
    ]
    version = delta.version(load_quarantine_path("ehr", "patients"))
    load_all(db, delta)  # set aside once: a second load commits nothing
    assert delta.version(load_quarantine_path("ehr", "patients")) == version
    held("text in change_seq", "row set aside with table, key and column; the rest loaded")


def test_fraction_change_number_is_set_aside_and_never_blocks_later_changes(
    db: Path, delta: DeltaTableStore
) -> None:
    top = head(db, "patients")
    execute(db, "UPDATE patients SET change_seq = ? WHERE patient_id = 3", top + 0.5)
    execute(
        db, "UPDATE patients SET given_name = 'Z', change_seq = ? WHERE patient_id = 5", top + 1
    )
    table = SourceTable(name="patients", primary_key=["patient_id"], batch_size=1)

    result = load_source_table(source_name="ehr", table=table, source=source(db), delta=delta)
    assert result.changelog_after == top + 1 and result.lag == 0
    assert patient(delta, 5)["given_name"] == "Z"
    reasons = [r["reason"] for r in set_aside(delta, "patients")]
    assert reasons == [
        f"unusable change number in source: change_seq is not a whole number ({top + 0.5})"
    ]
    held("fractional change_seq", "set aside; later changes load (batch of 1 not stuck)")


def test_head_state_counts_the_rows_it_cannot_load(db: Path, delta: DeltaTableStore) -> None:
    top = head(db, "patients")
    execute(db, "UPDATE patients SET change_seq = ? WHERE patient_id = 3", top + 0.5)
    load_all(db, delta)
    lags = table_lags("ehr", connection().tables, source(db), EtlStateStore(delta))
    assert {lag.table_name: lag.lag for lag in lags}["patients"] == 0  # no sensor loop

    result = CliRunner().invoke(main, ["etl", "head-state", "--source", "ehr"])
    assert result.exit_code == 0, result.output
    assert (
        "ehr/patients: 1 source row(s) set aside, not loaded "
        "(bronze/ehr/load_quarantine_patients gives each key and reason)"
    ) in result.output
    held("lag with an unloadable row", "lag 0 with a head-state note counting the row")


def test_fraction_in_an_integer_column_is_set_aside_not_truncated(
    db: Path, delta: DeltaTableStore
) -> None:
    top = head(db, "observations")
    execute(
        db,
        "UPDATE observations SET spo2 = 97.5, change_seq = ? WHERE observation_id = 1",
        top + 1,
    )
    load_all(db, delta)
    stored = delta.read(("bronze", "ehr", "observations")).to_pylist()
    assert top + 1 not in [r["change_seq"] for r in stored]  # no truncated copy appended
    assert set_aside(delta, "observations") == [
        {
            "source_table": "observations",
            "record_key": "1",
            "change_seq": top + 1,
            "reason": "wrong type in source: spo2: expected int64, "
            "got a fraction (would be truncated)",
        }
    ]
    held("SpO2 97.5 in an integer column", "set aside with key and column, never stored as 97")


def test_dropped_source_column_stops_that_table_in_one_line_and_loads_the_rest(
    db: Path, delta: DeltaTableStore
) -> None:
    top = max(head(db, t) for t in ("patients", "visits"))
    execute(db, "ALTER TABLE patients DROP COLUMN postcode")
    execute(
        db, "UPDATE patients SET given_name = 'Y', change_seq = ? WHERE patient_id = 4", top + 1
    )
    execute(db, "UPDATE visits SET change_seq = ? WHERE visit_id = 1", top + 2)
    before = EtlStateStore(delta).get("ehr", "patients")
    assert before is not None

    defs = build_source_defs(connection=connection(), ehr=EhrSettings())
    result = dg.materialize(
        [defs], resources={"ehr": source(db), "delta": delta}, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description == (
        "bronze/ehr/patients: the source no longer has column(s) 'postcode' that bronze holds; "
        "nothing of this table was loaded. Restore the column(s), or set "
        "ehr.dropped_source_columns: load_as_null to load them empty from now on"
    )
    materialized = {
        e.asset_key.path[-1] for e in result.get_asset_materialization_events() if e.asset_key
    }
    assert materialized == {"visits", "observations", "lab_results", "diagnoses"}
    after = EtlStateStore(delta).get("ehr", "patients")
    assert after is not None and after.changelog_number == before.changelog_number
    assert patient(delta, 4)["postcode"] is not None

    # The documented way out: accept the drift; the column is loaded empty from then on.
    relaxed = build_source_defs(
        connection=connection(), ehr=EhrSettings(dropped_source_columns="load_as_null")
    )
    assert dg.materialize([relaxed], resources={"ehr": source(db), "delta": delta}).success
    assert patient(delta, 4)["given_name"] == "Y" and patient(delta, 4)["postcode"] is None
    held("dropped source postcode column", "one line naming table and column; rest loaded")


def test_restored_column_loads_after_a_drift_failure(db: Path, delta: DeltaTableStore) -> None:
    top = head(db, "patients")
    execute(db, "ALTER TABLE patients RENAME COLUMN postcode TO postcode_old")
    execute(
        db, "UPDATE patients SET given_name = 'Y', change_seq = ? WHERE patient_id = 4", top + 1
    )
    table = SourceTable(name="patients", primary_key=["patient_id"])
    with pytest.raises(SchemaDriftError, match="'postcode'"):
        load_source_table(source_name="ehr", table=table, source=source(db), delta=delta)

    execute(db, "ALTER TABLE patients RENAME COLUMN postcode_old TO postcode")
    result = load_source_table(source_name="ehr", table=table, source=source(db), delta=delta)
    assert result.changelog_after == top + 1
    assert patient(delta, 4)["given_name"] == "Y" and patient(delta, 4)["postcode"] is not None
    held("rerun after restoring the column", "loads the held-back change")
