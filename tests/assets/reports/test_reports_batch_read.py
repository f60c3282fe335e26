"""Reports read only their batches' rows of the staging tables, whatever wrote the files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from assets.reports.writing import read_rows_in
from resources.delta.store import Matched
from tests.assets.reporting_world import Lake

TABLE = ("reporting", "rows_in_test")


def _rows(ids: list[str], days: list[date], status: str) -> pa.Table:
    return pa.table(
        {
            "requestitemid": [f"item-{i}" for i in range(len(ids))],
            "requestid": ids,
            "completeddate": pa.array(days, pa.date32()),
            "status": [status] * len(ids),
        }
    )


def _merged_lake(tmp_path: Path) -> Lake:
    """An appended file and a MERGE-written one (delta-rs writes its strings as views)."""
    lake = Lake.at(tmp_path / "lake")
    first = _rows(["r1", "r2", "r3", "r2"], [date(2026, 4, d) for d in (1, 2, 3, 4)], "SENT")
    lake.delta.append(TABLE, first)
    update = _rows(["r1", "r2"], [date(2026, 4, 5)] * 2, "DELIVERED")
    lake.delta.merge(
        TABLE,
        update,
        keys=["requestitemid"],
        matched=[Matched(set={"status": "s.status"})],
        prune=True,
    )
    return lake


def test_rows_of_the_named_batches_are_read_from_every_file(tmp_path: Path) -> None:
    lake = _merged_lake(tmp_path)

    rows = read_rows_in(lake.delta, TABLE, "requestid", ["r2", "r9"])

    assert rows is not None
    everything = lake.delta.read(TABLE)
    expected = everything.filter(pc.equal(pc.cast(everything["requestid"], pa.string()), "r2"))
    assert sorted(rows.to_pylist(), key=str) == sorted(expected.to_pylist(), key=str)
    assert sorted(r["requestitemid"] for r in rows.to_pylist()) == ["item-1", "item-3"]


def test_rows_are_chosen_by_date_as_well(tmp_path: Path) -> None:
    lake = _merged_lake(tmp_path)

    rows = read_rows_in(lake.delta, TABLE, "completeddate", [date(2026, 4, 3)])

    assert rows is not None
    assert [r["requestitemid"] for r in rows.to_pylist()] == ["item-2"]


def test_a_table_never_written_reads_as_none(tmp_path: Path) -> None:
    lake = Lake.at(tmp_path / "lake")

    assert read_rows_in(lake.delta, TABLE, "requestid", ["r1"]) is None
