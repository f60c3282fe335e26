"""DeltaTableStore against real delta-rs tables in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from resources.delta.store import DeltaTableStore, Matched

TABLE = ("silver", "things")
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.int64()), ("x", pa.string())])


def rows(*values: tuple[object, ...], schema: pa.Schema = SCHEMA) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(schema.names, v, strict=True)) for v in values], schema)


def content(store: DeltaTableStore, table=TABLE, **kwargs) -> list[tuple]:
    """The table's rows as tuples, ordered by the first column (a unique id here)."""
    data = store.read(table, **kwargs)
    return sorted((tuple(row.values()) for row in data.to_pylist()), key=lambda r: r[0])


def parquet_files(store: DeltaTableStore, table=TABLE) -> set[Path]:
    return set(Path(store.uri(table)).rglob("*.parquet"))


def test_delta_store_uri_follows_table_path(store: DeltaTableStore, tmp_path: Path):
    assert store.uri(("bronze", "ehr", "patients")) == f"{tmp_path}/lake/bronze/ehr/patients"


def test_delta_store_read_missing_table_raises(store: DeltaTableStore):
    with pytest.raises(TableNotFoundError):
        store.read(TABLE)


def test_delta_store_missing_table_is_none_everywhere(store: DeltaTableStore):
    assert store.read_or_none(TABLE) is None
    assert not store.exists(TABLE)
    assert store.version(TABLE) is None
    assert store.applied_version(TABLE, "file-1") is None


def test_delta_store_merge_creates_table(store: DeltaTableStore):
    metrics = store.merge(TABLE, rows((1, 1, "a"), (2, 1, "b")), keys=["id"])
    assert metrics["num_target_rows_inserted"] == 2
    assert content(store) == [(1, 1, "a"), (2, 1, "b")]
    assert store.version(TABLE) == 0


def test_delta_store_merge_updates_and_inserts(store: DeltaTableStore):
    store.merge(TABLE, rows((1, 1, "a"), (2, 1, "b")), keys=["id"])
    metrics = store.merge(TABLE, rows((2, 2, "B"), (3, 1, "c")), keys=["id"])
    assert metrics["num_target_rows_inserted"] == 1
    assert metrics["num_target_rows_updated"] == 1
    assert content(store) == [(1, 1, "a"), (2, 2, "B"), (3, 1, "c")]


def test_delta_store_merge_matched_condition_keeps_newer_row(store: DeltaTableStore):
    store.merge(TABLE, rows((1, 5, "new"), (2, 5, "new")), keys=["id"])
    metrics = store.merge(
        TABLE,
        rows((1, 3, "old"), (2, 7, "newer")),
        keys=["id"],
        matched=[Matched(where="s.v > t.v")],
    )
    assert metrics["num_target_rows_updated"] == 1
    assert content(store) == [(1, 5, "new"), (2, 7, "newer")]


def test_delta_store_merge_same_batch_twice_is_idempotent(store: DeltaTableStore):
    batch = rows((1, 1, "a"), (2, 2, "b"))
    store.merge(TABLE, rows((1, 0, "z")), keys=["id"])
    store.merge(TABLE, batch, keys=["id"], matched=[Matched(where="s.v > t.v")])
    first = content(store)
    metrics = store.merge(TABLE, batch, keys=["id"], matched=[Matched(where="s.v > t.v")])
    assert content(store) == first == [(1, 1, "a"), (2, 2, "b")]
    assert metrics["num_target_rows_updated"] == 0
    assert metrics["num_target_rows_inserted"] == 0


def test_delta_store_merge_without_condition_is_idempotent_in_content(store: DeltaTableStore):
    batch = rows((1, 1, "a"), (2, 2, "b"))
    store.merge(TABLE, batch, keys=["id"])
    store.merge(TABLE, batch, keys=["id"])
    assert content(store) == [(1, 1, "a"), (2, 2, "b")]


def test_delta_store_merge_updates_coalesce_keeps_old_values(store: DeltaTableStore):
    store.merge(TABLE, rows((1, 1, "keep"), (2, 1, "replace")), keys=["id"])
    updates = {"v": "s.v", "x": "coalesce(s.x, t.x)"}
    store.merge(
        TABLE, rows((1, 2, None), (2, 2, "new")), keys=["id"], matched=[Matched(set=updates)]
    )
    assert content(store) == [(1, 2, "keep"), (2, 2, "new")]


def test_delta_store_merge_null_safe_keys_match_null_dimensions(store: DeltaTableStore):
    schema = pa.schema([("client", pa.string()), ("campaign", pa.string()), ("n", pa.int64())])
    first = rows(("c1", None, 1), ("c1", "camp", 1), schema=schema)
    second = rows(("c1", None, 5), ("c1", "camp", 6), schema=schema)
    keys = ["client", "campaign"]
    store.merge(TABLE, first, keys=keys, null_safe_keys=True)
    metrics = store.merge(TABLE, second, keys=keys, null_safe_keys=True)
    assert metrics["num_target_rows_updated"] == 2
    assert metrics["num_target_rows_inserted"] == 0
    assert sorted(store.read(TABLE).to_pylist(), key=str) == sorted(second.to_pylist(), key=str)


def test_delta_store_merge_plain_keys_never_match_null(store: DeltaTableStore):
    schema = pa.schema([("client", pa.string()), ("campaign", pa.string()), ("n", pa.int64())])
    batch = rows(("c1", None, 1), schema=schema)
    store.merge(TABLE, batch, keys=["client", "campaign"])
    store.merge(TABLE, batch, keys=["client", "campaign"])
    assert store.read(TABLE).num_rows == 2  # why null_safe_keys exists


TOMBSTONE_SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.int64()), ("is_deleted", pa.int64())])


def test_delta_store_merge_delete_condition_deletes_matched(store: DeltaTableStore):
    store.merge(TABLE, rows((1, 1, 0), (2, 1, 0), (3, 1, 0), schema=TOMBSTONE_SCHEMA), keys=["id"])
    metrics = store.merge(
        TABLE,
        rows((1, 2, 1), (2, 2, 0), (4, 2, 1), (5, 2, 0), schema=TOMBSTONE_SCHEMA),
        keys=["id"],
        matched=[Matched(where="s.is_deleted = 1", delete=True), Matched()],
    )
    assert metrics["num_target_rows_deleted"] == 1
    assert metrics["num_target_rows_inserted"] == 1
    assert content(store) == [(2, 2, 0), (3, 1, 0), (5, 2, 0)]


def test_delta_store_merge_delete_condition_on_new_table_inserts_no_tombstones(
    store: DeltaTableStore,
):
    metrics = store.merge(
        TABLE,
        rows((1, 1, 1), (2, 1, 0), schema=TOMBSTONE_SCHEMA),
        keys=["id"],
        matched=[Matched(where="s.is_deleted = 1", delete=True), Matched()],
    )
    assert metrics["num_target_rows_inserted"] == 1
    assert content(store) == [(2, 1, 0)]
    assert store.read(TABLE).schema == TOMBSTONE_SCHEMA


def test_delta_store_merge_adds_new_columns(store: DeltaTableStore):
    store.merge(TABLE, rows((1, 1, "a")), keys=["id"])
    wider = SCHEMA.append(pa.field("y", pa.string()))
    store.merge(TABLE, rows((2, 1, "b", "extra"), schema=wider), keys=["id"])
    assert content(store) == [(1, 1, "a", None), (2, 1, "b", "extra")]


def test_delta_store_merge_records_app_marker(store: DeltaTableStore):
    store.merge(TABLE, rows((1, 1, "a")), keys=["id"], markers={"load-1": 7})
    store.merge(TABLE, rows((2, 1, "b")), keys=["id"], markers={"load-2": 3})
    assert store.applied_version(TABLE, "load-1") == 7
    assert store.applied_version(TABLE, "load-2") == 3


def test_delta_store_append_marked_records_markers_with_rows(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")))
    written = store.append(
        TABLE, rows((2, 1, "b"), (3, 1, "c")), markers=["file-a.jsonl", "file-b.jsonl"]
    )
    assert written.version == 1
    assert store.applied_version(TABLE, "file-a.jsonl") == 1
    assert store.applied_version(TABLE, "file-b.jsonl") == 1
    assert store.applied_version(TABLE, "file-c.jsonl") is None
    # Markers and rows are one commit: the version before has neither.
    before = store.table(TABLE, version=0)
    assert before.transaction_version("file-a.jsonl") is None
    assert store.read(TABLE, version=0).num_rows == 1
    assert store.read(TABLE).num_rows == 3
    assert len(store.history(TABLE)) == 2


def test_delta_store_append_marked_creates_table(store: DeltaTableStore):
    assert store.append(TABLE, rows((1, 1, "a")), markers=["f"]).version == 0
    assert store.applied_version(TABLE, "f") == 1


def test_delta_store_append_with_app_id_records_version(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")), markers={"batch": 42})
    assert store.applied_version(TABLE, "batch") == 42


def test_delta_store_append_merges_schema(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")))
    wider = SCHEMA.append(pa.field("y", pa.string()))
    store.append(TABLE, rows((2, 1, "b", "extra"), schema=wider))
    assert content(store) == [(1, 1, "a", None), (2, 1, "b", "extra")]


def test_delta_store_read_columns_and_filters(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a"), (2, 5, "b"), (3, 9, "c")))
    data = store.read(TABLE, columns=["id", "x"], filters=[("v", ">=", 5)])
    assert data.column_names == ["id", "x"]
    assert sorted(data.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 2, "x": "b"},
        {"id": 3, "x": "c"},
    ]


def test_delta_store_read_partitioned_table(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a"), (2, 1, "b")), partition_by=["x"])
    assert content(store) == [(1, 1, "a"), (2, 1, "b")]
    assert store.read(TABLE, filters=[("x", "=", "b")]).num_rows == 1


def test_delta_store_time_travel_reads_earlier_version(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")))
    store.merge(TABLE, rows((1, 2, "b")), keys=["id"])
    store.overwrite(TABLE, rows((9, 9, "z")))
    assert store.version(TABLE) == 2
    assert content(store, version=0) == [(1, 1, "a")]
    assert content(store, version=1) == [(1, 2, "b")]
    assert content(store) == [(9, 9, "z")]


def test_delta_store_delete_removes_matching_rows(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a"), (2, 1, "b")))
    metrics = store.delete(TABLE, "x = 'a'")
    assert metrics["num_deleted_rows"] == 1
    assert content(store) == [(2, 1, "b")]


def test_delta_store_optimize_reduces_file_count(store: DeltaTableStore):
    for i in range(4):
        store.append(TABLE, rows((i, i, str(i))))
    assert store.file_count(TABLE) == 4
    metrics = store.optimize(TABLE)
    assert metrics["numFilesRemoved"] == 4
    assert store.file_count(TABLE) == 1
    assert content(store) == [(i, i, str(i)) for i in range(4)]


def test_delta_store_optimize_z_order(store: DeltaTableStore):
    for i in range(3):
        store.append(TABLE, rows((i, 3 - i, str(i))))
    store.optimize(TABLE, z_order=["v"])
    assert store.file_count(TABLE) == 1
    assert content(store) == [(i, 3 - i, str(i)) for i in range(3)]


def test_delta_store_vacuum_removes_unreferenced_files(store: DeltaTableStore):
    for i in range(3):
        store.append(TABLE, rows((i, i, str(i))))
    store.optimize(TABLE)
    on_disk = parquet_files(store)
    referenced = {Path(uri.removeprefix("file://")) for uri in store.table(TABLE).file_uris()}
    assert len(on_disk) == 4
    removed = store.vacuum(TABLE, retention_hours=0)
    assert len(removed) == 3
    assert parquet_files(store) == referenced
    assert content(store) == [(i, i, str(i)) for i in range(3)]


def test_delta_store_vacuum_keeps_files_within_retention(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")))
    store.overwrite(TABLE, rows((2, 2, "b")))
    assert store.vacuum(TABLE, retention_hours=168) == []
    assert len(parquet_files(store)) == 2


def test_delta_store_history_lists_operations(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")))
    store.merge(TABLE, rows((1, 2, "b")), keys=["id"])
    history = store.history(TABLE)
    assert [entry["operation"] for entry in history] == ["MERGE", "WRITE"]
    assert len(store.history(TABLE, limit=1)) == 1


def test_delta_store_tables_are_plain_delta(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")))
    assert DeltaTable(store.uri(TABLE)).version() == 0


NEWER = "s.`v` > t.`v`"


def test_merge_with_clauses_commits_nothing_when_no_row_acts(store: DeltaTableStore):
    store.append(TABLE, rows((1, 5, "a"), (2, 5, "b")))
    version = store.version(TABLE)
    metrics = store.merge(
        TABLE,
        rows((1, 4, "old"), (2, 5, "same")),
        keys=["id"],
        matched=[Matched(where=NEWER, set={"v": "s.`v`"})],
        prune=True,
    )
    assert metrics["num_target_rows_updated"] == metrics["num_target_rows_inserted"] == 0
    assert store.version(TABLE) == version
    assert content(store) == [(1, 5, "a"), (2, 5, "b")]


def test_merge_with_clauses_merges_only_rows_that_act(store: DeltaTableStore):
    store.append(TABLE, rows((1, 5, "a"), (2, 5, "b")))
    updates = {"v": "s.`v`", "x": "s.`x`"}
    metrics = store.merge(
        TABLE,
        rows((1, 4, "older"), (2, 6, "newer"), (3, 1, "new")),
        keys=["id"],
        matched=[Matched(where=NEWER, set=updates)],
        prune=True,
    )
    assert (metrics["num_target_rows_updated"], metrics["num_target_rows_inserted"]) == (1, 1)
    assert metrics["num_source_rows"] == 3
    assert content(store) == [(1, 5, "a"), (2, 6, "newer"), (3, 1, "new")]


def test_merge_with_clauses_records_markers_even_when_nothing_changes(store: DeltaTableStore):
    store.append(TABLE, rows((1, 5, "a")))
    no_op = rows((1, 5, "a"))
    store.merge(
        TABLE,
        no_op,
        keys=["id"],
        matched=[Matched(where=NEWER, set={"v": "s.`v`"})],
        markers={"source": 7},
        prune=True,
    )
    assert store.applied_version(TABLE, "source") == 7
    version = store.version(TABLE)
    store.merge(
        TABLE,
        no_op,
        keys=["id"],
        matched=[Matched(where=NEWER, set={"v": "s.`v`"})],
        markers={"source": 7},
        prune=True,
    )
    assert store.version(TABLE) == version  # recorded already: no second commit


def test_dataset_added_after_lists_only_newer_files(store: DeltaTableStore):
    store.append(TABLE, rows((1, 1, "a")))
    first = store.version(TABLE)
    store.append(TABLE, rows((2, 2, "b")))
    store.append(TABLE, rows((3, 3, "c")))
    newer = store.dataset(TABLE, added_after=first).to_table()
    assert sorted(newer.column("id").to_pylist()) == [2, 3]
    assert store.dataset(TABLE).count_rows() == 3


def test_dataset_filters_strings_in_files_a_merge_wrote(store: DeltaTableStore):
    """delta-rs MERGE writes strings as string_view; a string filter must still work."""
    store.append(TABLE, rows((1, 1, "a")))
    store.merge(
        TABLE,
        rows((1, 2, "b"), (2, 1, "c")),
        keys=["id"],
        matched=[Matched(where=NEWER, set={"x": "s.`x`"})],
        prune=True,
    )
    dataset = store.dataset(TABLE)
    connection = duckdb.connect()
    connection.register("things", dataset.to_table(columns=["id", "x"]))
    assert connection.sql("SELECT id FROM things WHERE x >= 'b' ORDER BY id").fetchall() == [
        (1,),
        (2,),
    ]
