"""MERGE with clauses into a partitioned table: only the partitions holding updated rows
are rewritten, and a row is found wherever it is stored."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from resources.delta.store import DeltaTableStore, Matched, WriteMetrics
from tests.lakes import local_store

TABLE = ("reporting", "things")
SCHEMA = pa.schema(
    [("id", pa.string()), ("v", pa.int64()), ("x", pa.string()), ("day", pa.date32())]
)
NEWER = "s.`v` > t.`v`"
UPDATE_ALL = {"v": "s.`v`", "x": "s.`x`", "day": "coalesce(s.`day`, t.`day`)"}
FILL = "t.`x` IS NULL AND s.`x` IS NOT NULL"


def rows(*values: tuple[object, ...]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, v, strict=True)) for v in values], SCHEMA)


def content(store: DeltaTableStore) -> list[tuple]:
    return sorted(tuple(r.values()) for r in store.read(TABLE).to_pylist())


def day(n: int) -> date:
    return date(2026, 3, n)


def merge(store: DeltaTableStore, data: pa.Table, **kwargs) -> WriteMetrics:
    return store.merge(
        TABLE,
        data,
        keys=["id"],
        matched=[
            Matched(where=NEWER, set=UPDATE_ALL),
            Matched(where=FILL, set={"x": "coalesce(t.`x`, s.`x`)"}),
        ],
        partition_by=["day"],
        prune=True,
        **kwargs,
    )


def loaded(store: DeltaTableStore) -> DeltaTableStore:
    merge(store, rows(*[(f"k{d}-{i}", 1, "a", day(d)) for d in range(1, 11) for i in range(3)]))
    return store


def test_partitioned_merge_rewrites_only_the_partitions_it_updates(store: DeltaTableStore):
    loaded(store)
    metrics = merge(store, rows(("k9-0", 2, "b", day(9)), ("k1-0", 0, "old", day(1))))
    assert metrics["num_target_rows_updated"] == 1
    assert metrics["num_target_files_scanned"] == 1  # day 9 only, of ten
    assert metrics["num_target_rows_copied"] == 2
    assert ("k9-0", 2, "b", day(9)) in content(store)
    assert ("k1-0", 1, "a", day(1)) in content(store)


def test_partitioned_merge_of_new_keys_only_appends(store: DeltaTableStore):
    loaded(store)
    files = set(store.table(TABLE).file_uris())
    metrics = merge(store, rows(("new", 1, "n", day(10))), markers={"source": 3})
    assert metrics["num_target_rows_inserted"] == 1
    assert files <= set(store.table(TABLE).file_uris())  # nothing rewritten
    assert store.applied_version(TABLE, "source") == 3
    assert len(content(store)) == 31


def test_partitioned_merge_finds_a_row_whose_partition_value_changes(store: DeltaTableStore):
    """The stored row is matched where it is (not where the incoming row says), so it
    moves to its new partition instead of being duplicated."""
    loaded(store)
    merge(store, rows(("k2-1", 5, "moved", day(7)), ("nul", 1, None, None)))
    merge(store, rows(("nul", 2, "dated", day(3)), ("k2-2", 4, "blank", None)))
    stored = content(store)
    assert len(stored) == 31
    assert ("k2-1", 5, "moved", day(7)) in stored
    assert ("nul", 2, "dated", day(3)) in stored
    assert ("k2-2", 4, "blank", day(2)) in stored  # coalesce keeps the stored day


def test_partitioned_merge_matches_unpartitioned_result(tmp_path: Path):
    """Same clauses, same inputs: the partitioned layout changes no row."""
    plain = local_store(tmp_path / "plain")
    parted = local_store(tmp_path / "parted")
    first = rows(*[(f"k{i}", i % 3, "x" if i % 4 else None, day(1 + i % 5)) for i in range(40)])
    second = rows(*[(f"k{i}", 2, "y", day(1 + i % 7) if i % 6 else None) for i in range(0, 60, 3)])
    for batch in (first, second):
        plain.merge(
            TABLE,
            batch,
            keys=["id"],
            matched=[
                Matched(where=NEWER, set=UPDATE_ALL),
                Matched(where=FILL, set={"x": "coalesce(t.`x`, s.`x`)"}),
            ],
            prune=True,
        )
        merge(parted, batch)
    assert content(plain) == content(parted)
    assert parted.table(TABLE).metadata().partition_columns == ["day"]


def test_repartition_keeps_rows_and_markers(store: DeltaTableStore):
    store.merge(
        TABLE,
        rows(("a", 1, "x", day(1)), ("b", 1, None, None)),
        keys=["id"],
        matched=[Matched(where=NEWER, set=UPDATE_ALL)],
        markers={"source": 4},
        prune=True,
    )
    before = content(store)
    assert store.repartition(TABLE, ["day"])
    assert not store.repartition(TABLE, ["day"])  # already laid out so
    assert content(store) == before
    assert store.table(TABLE).metadata().partition_columns == ["day"]
    assert store.applied_version(TABLE, "source") == 4


def test_dataset_pruned_by_partition_values_reads_the_same_rows_as_delta_rs(
    store: DeltaTableStore,
):
    """Partition-only filters are answered from the log; the rows are those delta-rs
    pruning gives (null partitions fail every comparison)."""
    loaded(store)
    merge(store, rows(("nul", 1, "n", None)))
    filters = [
        [("day", ">=", day(8))],
        [("day", ">=", day(3)), ("day", "<", day(5))],
        [("day", "in", [day(2), day(9)])],
        [("day", "in", [])],
    ]
    for where in filters:
        fast = store.dataset(TABLE, where=where).to_table()
        assert sorted(fast.column("id").to_pylist()) == sorted(
            store.read(TABLE, filters=where).column("id").to_pylist()
        ), where
    as_text = store.dataset(TABLE, where=[("day", ">=", day(8).isoformat())]).to_table()
    assert as_text.num_rows == 9  # an ISO date string compares as the date
    assert store.dataset(TABLE).count_rows() == 31
