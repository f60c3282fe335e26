"""Changelog numbers in ``internal/etl_state``: compare-and-swap writes."""

from __future__ import annotations

from pathlib import Path

from assets.ehr.etl_state import ETL_STATE_TABLE, EtlStateStore
from resources.delta.store import DeltaTableStore
from tests.lakes import local_store


def store(root: Path) -> DeltaTableStore:
    return local_store(root)


def numbers(delta: DeltaTableStore) -> dict[tuple[str, str], int]:
    return {(s.source, s.table_name): s.changelog_number for s in EtlStateStore(delta).all()}


def test_state_write_replaces_one_row_per_table(tmp_path: Path) -> None:
    delta = store(tmp_path)
    state = EtlStateStore(delta)
    for number in (5, 9):
        state.set("ehr", "visits", changelog_number=number, load_mode="changelog", rows_loaded=1)
    state.set("ehr", "patients", changelog_number=3, load_mode="bulk", rows_loaded=1)
    assert numbers(delta) == {("ehr", "visits"): 9, ("ehr", "patients"): 3}
    assert delta.read(ETL_STATE_TABLE).num_rows == 2


def test_concurrent_state_write_of_another_table_is_not_lost(tmp_path: Path) -> None:
    delta = store(tmp_path)
    first, second = EtlStateStore(delta), EtlStateStore(delta)
    first.set("ehr", "visits", changelog_number=1, load_mode="bulk", rows_loaded=1)
    assert first.get("ehr", "visits") is not None  # ``first`` now holds a snapshot
    second.set("other", "patients", changelog_number=7, load_mode="bulk", rows_loaded=1)
    first.set("ehr", "visits", changelog_number=2, load_mode="changelog", rows_loaded=2)
    assert numbers(delta) == {("ehr", "visits"): 2, ("other", "patients"): 7}


def test_state_write_after_clear_state_does_not_bring_back_cleared_tables(
    tmp_path: Path,
) -> None:
    delta = store(tmp_path)
    loader = EtlStateStore(delta)
    loader.set("ehr", "visits", changelog_number=4, load_mode="bulk", rows_loaded=1)
    loader.set("ehr", "patients", changelog_number=4, load_mode="bulk", rows_loaded=1)
    assert EtlStateStore(delta).clear("ehr", "patients") == 1
    loader.set("ehr", "visits", changelog_number=6, load_mode="changelog", rows_loaded=2)
    assert numbers(delta) == {("ehr", "visits"): 6}
