"""Replacing the rows of some visits in one MERGE (``DeltaTableStore.replace_groups``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from resources.delta.store import DeltaTableStore
from tests.lakes import local_store

KEYS = ("visit_id", "h")


def rows(*items: tuple[int, int, float | None]) -> pa.Table:
    return pa.table(
        {
            "visit_id": pa.array([i[0] for i in items], pa.int64()),
            "h": pa.array([i[1] for i in items], pa.int64()),
            "x": pa.array([i[2] for i in items], pa.float64()),
        }
    )


def stored(delta: DeltaTableStore) -> list[tuple]:
    data = delta.read(("gold", "t")).to_pylist()
    return sorted((r["visit_id"], r["h"], r["x"]) for r in data)


def test_features_replace_groups_rewrites_only_the_named_visits(tmp_path: Path) -> None:
    delta = local_store(tmp_path)
    table = ("gold", "t")
    first = delta.sync(
        table,
        rows((1, 1, 1.0), (1, 2, 2.0), (2, 1, 5.0), (3, 1, 7.0)),
        keys=KEYS,
        group_column="visit_id",
        groups=[1, 2, 3],
    )
    assert first["num_target_rows_inserted"] == 4
    # Visit 1: one row is unchanged, one changes (to null) and one arrives.
    # Visit 2 disappears entirely; visit 3 is not named, so it is untouched.
    metrics = delta.sync(
        table,
        rows((1, 1, 1.0), (1, 3, 3.0), (1, 2, None)),
        keys=KEYS,
        group_column="visit_id",
        groups=[1, 2],
    )
    assert stored(delta) == [(1, 1, 1.0), (1, 2, None), (1, 3, 3.0), (3, 1, 7.0)]
    assert metrics == {
        "num_target_rows_inserted": 1,
        "num_target_rows_updated": 1,  # null is a change; the identical row is left alone
        "num_target_rows_deleted": 1,
    }
    version = delta.version(table)
    nothing = delta.sync(table, rows(), keys=KEYS, group_column="visit_id", groups=[])
    assert sum(nothing.values()) == 0 and delta.version(table) == version
