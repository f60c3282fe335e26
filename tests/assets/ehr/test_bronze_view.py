"""The current view of an append-only EHR bronze table, and its compaction."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from assets.ehr.bronze_view import LOAD_COLUMN, compact, current_rows, read_current
from tests.lakes import local_store


def rows(*values: tuple[int | None, int, int, str]) -> pa.Table:
    """(key, change_seq, load, value) rows."""
    return pa.table(
        {
            "id": pa.array([v[0] for v in values], pa.int64()),
            "change_seq": pa.array([v[1] for v in values], pa.int64()),
            LOAD_COLUMN: pa.array([v[2] for v in values], pa.int64()),
            "value": pa.array([v[3] for v in values], pa.string()),
        }
    )


def test_current_view_picks_each_keys_newest_load() -> None:
    data = rows((1, 5, 10, "old"), (2, 6, 10, "kept"), (1, 15, 20, "new"))
    current = current_rows(data, ["id"])
    assert sorted(current.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "change_seq": 15, "value": "new"},
        {"id": 2, "change_seq": 6, "value": "kept"},
    ]


def test_current_view_keeps_both_copies_of_a_key_read_by_one_load() -> None:
    """A source without a key constraint: the duplicate stays visible for silver to quarantine."""
    data = rows((1, 5, 10, "a"), (1, 6, 10, "b"), (2, 7, 10, "c"))
    assert current_rows(data, ["id"]).num_rows == 3


def test_current_view_never_supersedes_rows_without_a_key() -> None:
    data = rows((None, 5, 10, "a"), (None, 9, 20, "b"), (1, 9, 20, "c"))
    assert current_rows(data, ["id"]).num_rows == 3


def test_current_view_of_rows_written_before_the_load_column_is_the_table() -> None:
    data = pa.table({"id": [1, 2], "change_seq": [1, 2]})
    assert current_rows(data, ["id"]).equals(data)


def test_current_view_drops_the_load_column_and_reads_only_asked_columns(tmp_path: Path) -> None:
    delta = local_store(tmp_path)
    delta.append(("bronze", "ehr", "t"), rows((1, 5, 10, "old"), (2, 6, 10, "x")))
    delta.append(("bronze", "ehr", "t"), rows((1, 15, 20, "new")))
    current = read_current(delta, ("bronze", "ehr", "t"), ["id"], columns=["value"])
    assert current.column_names == ["value"]
    assert sorted(current["value"].to_pylist()) == ["new", "x"]


def test_compaction_keeps_the_current_view_and_is_a_no_op_when_repeated(tmp_path: Path) -> None:
    delta = local_store(tmp_path)
    path = ("bronze", "ehr", "t")
    delta.append(path, rows((1, 5, 10, "old"), (2, 6, 10, "x"), (3, 7, 10, "y")))
    delta.append(path, rows((1, 15, 20, "new"), (3, 16, 20, "gone")))
    before = read_current(delta, path, ["id"]).sort_by("id")
    done = compact(delta, path, ["id"], min_share=0.0)
    assert done.committed and done.rows_removed == 2
    assert read_current(delta, path, ["id"]).sort_by("id").equals(before)
    assert delta.read(path).num_rows == before.num_rows
    assert LOAD_COLUMN in delta.read(path).column_names  # later loads still supersede
    version = delta.version(path)
    assert not compact(delta, path, ["id"], min_share=0.0).committed
    assert delta.version(path) == version


def test_compaction_below_the_threshold_commits_nothing(tmp_path: Path) -> None:
    delta = local_store(tmp_path)
    path = ("bronze", "ehr", "t")
    delta.append(path, rows(*[(i, i, 10, "v") for i in range(10)]))
    delta.append(path, rows((1, 50, 20, "new")))
    assert not compact(delta, path, ["id"], min_share=0.5).committed
    assert delta.read(path).num_rows == 11
