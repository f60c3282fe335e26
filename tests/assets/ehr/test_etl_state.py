"""Changelog numbers persisted in the lake's ``internal/etl_state`` Delta table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from assets.ehr.etl_state import ETL_STATE_TABLE, EtlStateStore, TableState
from resources.delta.store import DeltaTableStore
from tests.lakes import local_store


@pytest.fixture
def delta(tmp_path: Path) -> DeltaTableStore:
    return local_store(tmp_path / "lake")


@pytest.fixture
def state(delta: DeltaTableStore) -> EtlStateStore:
    return EtlStateStore(delta)


def test_etl_state_empty_lake_has_no_state(state: EtlStateStore):
    assert state.all() == []
    assert state.get("ehr", "patients") is None
    assert state.clear("ehr") == 0


def test_etl_state_set_then_get_round_trip(state: EtlStateStore):
    before = datetime.now(UTC)
    state.set("ehr", "patients", changelog_number=42, load_mode="bulk", rows_loaded=1000)
    got = state.get("ehr", "patients")
    assert isinstance(got, TableState)
    assert (got.source, got.table_name, got.changelog_number, got.load_mode, got.rows_loaded) == (
        "ehr",
        "patients",
        42,
        "bulk",
        1000,
    )
    assert before <= got.updated_at <= datetime.now(UTC)


def test_etl_state_set_overwrites_one_row_per_table(state: EtlStateStore, delta: DeltaTableStore):
    state.set("ehr", "patients", changelog_number=42, load_mode="bulk", rows_loaded=1000)
    state.set("ehr", "patients", changelog_number=57, load_mode="incremental", rows_loaded=15)
    got = state.get("ehr", "patients")
    assert got is not None
    assert (got.changelog_number, got.load_mode, got.rows_loaded) == (57, "incremental", 15)
    assert delta.read(ETL_STATE_TABLE).num_rows == 1


def test_etl_state_all_sorted_and_filtered_by_source(state: EtlStateStore):
    state.set("ehr", "visits", changelog_number=2, load_mode="bulk", rows_loaded=2)
    state.set("lims", "results", changelog_number=3, load_mode="bulk", rows_loaded=3)
    state.set("ehr", "patients", changelog_number=1, load_mode="bulk", rows_loaded=1)
    assert [(s.source, s.table_name) for s in state.all()] == [
        ("ehr", "patients"),
        ("ehr", "visits"),
        ("lims", "results"),
    ]
    assert [s.table_name for s in state.all("ehr")] == ["patients", "visits"]
    assert state.get("lims", "patients") is None


def test_etl_state_clear_one_table(state: EtlStateStore):
    state.set("ehr", "patients", changelog_number=1, load_mode="bulk", rows_loaded=1)
    state.set("ehr", "visits", changelog_number=2, load_mode="bulk", rows_loaded=2)
    assert state.clear("ehr", "visits") == 1
    assert [s.table_name for s in state.all()] == ["patients"]


def test_etl_state_clear_whole_source(state: EtlStateStore):
    state.set("ehr", "patients", changelog_number=1, load_mode="bulk", rows_loaded=1)
    state.set("ehr", "visits", changelog_number=2, load_mode="bulk", rows_loaded=2)
    state.set("lims", "results", changelog_number=3, load_mode="bulk", rows_loaded=3)
    assert state.clear("ehr") == 2
    assert [(s.source, s.table_name) for s in state.all()] == [("lims", "results")]
    state.set("ehr", "patients", changelog_number=9, load_mode="bulk", rows_loaded=9)
    again = state.get("ehr", "patients")
    assert again is not None
    assert again.changelog_number == 9


def test_etl_state_quotes_in_names_are_literals(state: EtlStateStore):
    state.set("o'brien", "t'1", changelog_number=1, load_mode="bulk", rows_loaded=1)
    state.set("o", "t", changelog_number=2, load_mode="bulk", rows_loaded=2)
    assert state.clear("o'brien", "t'1") == 1
    assert [(s.source, s.table_name) for s in state.all()] == [("o", "t")]
