"""The current view of an EHR bronze table: the rows of each key's newest load.

Changelog loads APPEND to bronze (merge-on-read) instead of rewriting it: a copy-on-write
MERGE rewrites every file a change touches, and 1% of rows changed at random touch every
file, so a small changelog load cost as much as a bulk load. Each bronze row carries
``LOAD_COLUMN``, the source's newest change number when the load that wrote it started.
A key's *current* rows are its rows with the greatest ``LOAD_COLUMN``; older rows of the
key are superseded (by an update or a tombstone) and every reader ignores them.

Comparing loads rather than change numbers keeps one rule from the copy-on-write days:
two rows of one key read by the same load (a source without a key constraint) are both
current, so the duplicate is reported and quarantined downstream rather than resolved by
guessing. Within one changelog batch the loader still keeps only the newest copy.

``compact`` rewrites a table as its current view once superseded rows pass a share of
the table; it is one compare-and-swap commit, so it is crash-safe, loses to a concurrent
load instead of overwriting it, and re-running it on a compact table does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from resources.delta.store import DeltaTableStore, TablePath

LOAD_COLUMN = "_load_head"
# Compact once superseded rows are this share of a table: reads then scan at most ~1.25x.
COMPACT_SUPERSEDED_SHARE = 0.2


def _load_values(table: pa.Table) -> pa.Array:
    """The load column with rows written before it existed counted as the oldest load."""
    if LOAD_COLUMN not in table.column_names:
        return pa.array([-1] * table.num_rows, pa.int64())
    return pc.fill_null(table[LOAD_COLUMN].combine_chunks().cast(pa.int64()), -1)


def current_mask(keys: pa.Table, primary_key: Sequence[str]) -> pa.Array | None:
    """Which rows are current (None when every row is: the common, compacted case).

    Args:
        keys: at least the primary key columns and ``LOAD_COLUMN`` (if the table has it).
        primary_key: the key columns.
    """
    if keys.num_rows < 2 or LOAD_COLUMN not in keys.column_names:
        return None
    indexed = pa.table(
        {
            **{f"k{i}": keys[c] for i, c in enumerate(primary_key)},
            "load": _load_values(keys),
        }
    )
    key_names = [f"k{i}" for i in range(len(primary_key))]
    newest = indexed.group_by(key_names).aggregate(
        [("load", "max"), ("load", "min")]
    )  # null keys form one group, as in Spark
    if pc.all(pc.equal(newest["load_max"], newest["load_min"])).as_py() is not False:
        return None
    joined = indexed.append_column("_row", pa.array(range(keys.num_rows), pa.int64())).join(
        newest.select([*key_names, "load_max"]), keys=key_names, join_type="left outer"
    )
    keep = pc.equal(joined["load"], joined["load_max"])
    order = pc.sort_indices(joined["_row"])
    return pc.fill_null(keep.take(order), True).combine_chunks()


def current_rows(table: pa.Table, primary_key: Sequence[str]) -> pa.Table:
    """A bronze table's current rows, without the load column."""
    mask = current_mask(table, primary_key)
    rows = table if mask is None else table.filter(mask)
    return rows.drop_columns([LOAD_COLUMN]) if LOAD_COLUMN in rows.column_names else rows


def read_current(
    delta: DeltaTableStore,
    table: TablePath,
    primary_key: Sequence[str],
    *,
    columns: list[str] | None = None,
) -> pa.Table:
    """Read a bronze table's current view (optionally only ``columns``).

    Raises:
        TableNotFoundError: when nothing has been written at the table's path.
    """
    if columns is None:
        return current_rows(delta.read(table), primary_key)
    schema = delta.table(table).schema().to_arrow()
    extra = [c for c in [*primary_key, LOAD_COLUMN] if c in schema.names and c not in columns]
    data = delta.read(table, columns=[*columns, *extra])
    return current_rows(data, primary_key).select(columns)


@dataclass(frozen=True)
class Compaction:
    """What one compaction did."""

    rows_before: int
    rows_after: int
    committed: bool

    @property
    def rows_removed(self) -> int:
        return self.rows_before - self.rows_after if self.committed else 0


def superseded_share(keys: pa.Table, primary_key: Sequence[str]) -> float:
    """The share of rows no reader sees any more (0.0 for an empty table)."""
    mask = current_mask(keys, primary_key)
    if mask is None or not keys.num_rows:
        return 0.0
    return 1.0 - pc.sum(mask.cast(pa.int64())).as_py() / keys.num_rows


def compact(
    delta: DeltaTableStore,
    table: TablePath,
    primary_key: Sequence[str],
    *,
    min_share: float = COMPACT_SUPERSEDED_SHARE,
) -> Compaction:
    """Rewrite a bronze table as its current rows when superseded rows pass ``min_share``.

    The rewrite keeps ``LOAD_COLUMN`` (so later loads still supersede correctly) and is
    committed only if the table is still at the version read: a load that appended
    meanwhile wins, and the next compaction retries.
    """
    snapshot = delta.table(table)
    version = snapshot.version()
    data = snapshot.to_pyarrow_table(filesystem=delta.storage.filesystem(delta.uri(table)))
    mask = current_mask(data, primary_key)
    removed = 0 if mask is None else data.num_rows - int(pc.sum(mask.cast(pa.int64())).as_py())
    if mask is None or removed == 0 or removed < min_share * data.num_rows:
        return Compaction(data.num_rows, data.num_rows, committed=False)
    kept = data.filter(mask)
    if not delta.replace_if_version(table, kept, expected_version=version):
        return Compaction(data.num_rows, data.num_rows, committed=False)
    return Compaction(data.num_rows, kept.num_rows, committed=True)
