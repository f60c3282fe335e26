"""Filtered reads of tables that delta-rs MERGE has written to.

delta-rs MERGE writes string columns as ``string_view``, so after a merge a table mixes
``string`` and ``string_view`` Parquet files and pyarrow cannot push a string filter
onto them. The completed batch report reads ``requestid in (...)`` from a staging table
merged on every cycle: its second cycle failed until ``read`` handled this.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.delta.store import DeltaTableStore
from tests.lakes import local_store

TABLE = ("reporting", "things")


@pytest.fixture
def merged(tmp_path: Path) -> DeltaTableStore:
    """Two files; the merge rewrites the second (as string_view) and leaves the first."""
    store = local_store(tmp_path / "lake")
    store.append(TABLE, pa.table({"k": ["a"], "v": [1]}))
    store.append(TABLE, pa.table({"k": ["b"], "v": [2]}))
    store.table(TABLE).merge(
        pa.table({"k": ["b", "c"], "v": [3, 4]}), "s.k = t.k", source_alias="s", target_alias="t"
    ).when_matched_update_all().when_not_matched_insert_all().execute()
    return store


def test_a_merge_leaves_string_and_string_view_files(merged: DeltaTableStore) -> None:
    kinds = {str(pq.read_schema(uri).field("k").type) for uri in merged.table(TABLE).file_uris()}
    assert kinds == {"string", "string_view"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([("k", "in", ["b", "c"])], [("b", 3), ("c", 4)]),
        ([("k", "=", "a")], [("a", 1)]),
        ([("k", ">=", "b"), ("v", "<", 4)], [("b", 3)]),
    ],
)
def test_string_filters_read_a_merged_table(
    merged: DeltaTableStore, filters: list[tuple[str, str, object]], expected: list[tuple]
) -> None:
    data = merged.read(TABLE, filters=filters)
    assert data.schema.field("k").type == pa.string()
    assert sorted(zip(data["k"].to_pylist(), data["v"].to_pylist(), strict=True)) == expected


def test_filtered_read_keeps_only_the_asked_columns(merged: DeltaTableStore) -> None:
    data = merged.read(TABLE, columns=["v"], filters=[("k", "in", ["c"])])
    assert data.column_names == ["v"] and data["v"].to_pylist() == [4]
