"""Load one source table into bronze: bulk first, then by changelog number, under the source
lock, never skipping a row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from deltalake import DeltaTable

from assets.ehr.bronze_view import COMPACT_SUPERSEDED_SHARE, LOAD_COLUMN, compact
from assets.ehr.change_batches import (
    bronze_schema,
    newest_per_key,
    quarantine,
    read_change_batch,
    source_columns,
    tombstone_count,
    unusable_change_rows,
)
from assets.ehr.etl_state import EtlStateStore
from assets.ehr.settings import DroppedColumnPolicy, SourceTable
from assets.metadata import delta_table_metadata
from resources.delta.store import DeltaTableStore, TablePath
from resources.sql_source import SqlSourceResource

LOCK_PURPOSE = "bronze load"


class SchemaDriftError(RuntimeError):
    """The source dropped a column bronze holds, and the policy is to stop that table."""


@dataclass(frozen=True)
class LoadResult:
    """What one load of a source table did."""

    mode: str
    rows_read: int
    rows_inserted: int
    rows_updated: int
    batches: int
    changelog_before: int | None
    changelog_after: int | None
    rows_tombstoned: int = 0
    source_changelog_number: int | None = None
    rows_quarantined: int = 0

    @property
    def lag(self) -> int:
        """Source changes not yet in bronze when the load finished."""
        if self.source_changelog_number is None:
            return 0
        return max(0, self.source_changelog_number - (self.changelog_after or 0))


def _append(delta: DeltaTableStore, table: TablePath, data: pa.Table, target: Any = None) -> None:
    """One append commit (to an opened snapshot when given: no second log replay)."""
    delta.append(table, data, at=target)


def _identity(data: pa.Table, columns: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    """One comparable value per row for ``columns`` (NULL-safe, so replays of a row with
    a missing key are recognised too)."""
    if len(columns) == 1:
        return data[columns[0]]
    parts = [
        pc.fill_null(pc.binary_join_element_wise("v", data[c].cast(pa.string()), ""), "null")
        for c in columns
    ]
    return pc.binary_join_element_wise(*parts, "\x1f")


@dataclass(frozen=True)
class NewRows:
    """The rows of a batch bronze does not hold yet, and what appending them does."""

    rows: pa.Table
    updates: int
    bronze_rows_after: int
    superseded_after: int


def unseen_rows(
    delta: DeltaTableStore,
    bronze: TablePath,
    snapshot: DeltaTable,
    batch: pa.Table,
    table: SourceTable,
) -> NewRows:
    """Drop rows whose (key, change number) bronze already holds: a replayed batch adds nothing.

    Reads only the key, change and load columns of bronze (a column-pruned scan, the
    one part of a changelog load that grows with the table); the bronze rows a batch
    can repeat have a change number at least the batch's smallest, so the anti-join
    runs over the rows appended since then. Also counts the rows that become updates
    (their key is in bronze) and the superseded rows after the append, which decides
    when the table is compacted.
    """
    keys = list(table.primary_key)
    change = table.change_column
    schema_names = snapshot.schema().to_arrow().names
    wanted = [*keys, change, *([LOAD_COLUMN] if LOAD_COLUMN in schema_names else [])]
    filesystem = delta.storage.filesystem(delta.uri(bronze))
    existing = snapshot.to_pyarrow_dataset(filesystem=filesystem).to_table(columns=wanted)
    recent = existing.filter(pc.greater_equal(existing[change], pc.min(batch[change])))
    if recent.num_rows:
        repeated = pc.is_in(
            _identity(batch, [*keys, change]), value_set=_identity(recent, [*keys, change])
        )
        batch = batch.filter(pc.invert(repeated))
    existing_keys = _identity(existing, keys)
    batch_keys = _identity(batch, keys)
    # Every superseded row's key also has a row from a load newer than the oldest one.
    if LOAD_COLUMN in existing.column_names and existing.num_rows:
        loads = pc.fill_null(existing[LOAD_COLUMN], -1)
        newer = existing_keys.filter(pc.greater(loads, pc.min(loads)))
    else:
        newer = existing_keys.slice(0, 0)
    touched = pc.unique(pa.chunked_array([*_chunks(newer), *_chunks(batch_keys)], batch_keys.type))
    # One probe of bronze's keys against the few touched ones; the rest works on the hits.
    hits = existing_keys.filter(pc.is_in(existing_keys, value_set=touched))
    updates = int(pc.sum(pc.is_in(batch_keys, value_set=hits).cast(pa.int64())).as_py() or 0)
    superseded = len(hits) + batch.num_rows - len(touched)
    return NewRows(batch, updates, existing.num_rows + batch.num_rows, max(superseded, 0))


def _chunks(values: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def load_source_table(
    *,
    source_name: str,
    table: SourceTable,
    source: SqlSourceResource,
    delta: DeltaTableStore,
    log: dg.DagsterLogManager | None = None,
    heartbeat: Callable[[], None] | None = None,
    dropped_columns: DroppedColumnPolicy = "fail",
    on_batch: Callable[[int], None] | None = None,
) -> LoadResult:
    """Copy new and changed rows of one source table into bronze.

    The caller holds the source's lock; ``heartbeat`` is called after every batch so a
    long load keeps its lock fresh (and stops if the lock was broken), and ``on_batch``
    with the batch's row count, for the step's progress lines. Every source
    query of the load runs on one connection. Source rows whose change number no load
    can read (missing, text, a fraction) are set aside in the table's load quarantine.

    Raises:
        SchemaDriftError: the source dropped a column bronze holds and
            ``dropped_columns`` is ``fail``; nothing of the table was loaded.
    """
    with source.connect() as connection:
        return _load_source_table(
            source_name=source_name,
            table=table,
            source=source,
            delta=delta,
            connection=connection,
            log=log,
            heartbeat=heartbeat,
            dropped_columns=dropped_columns,
            on_batch=on_batch,
        )


def _load_source_table(
    *,
    source_name: str,
    table: SourceTable,
    source: SqlSourceResource,
    delta: DeltaTableStore,
    connection: sa.Connection,
    log: dg.DagsterLogManager | None,
    heartbeat: Callable[[], None] | None,
    dropped_columns: DroppedColumnPolicy,
    on_batch: Callable[[int], None] | None = None,
) -> LoadResult:
    bronze = ("bronze", source_name, table.name)
    name = "/".join(bronze)
    state = EtlStateStore(delta)
    stored = state.get(source_name, table.name)
    snapshot = delta.table_or_none(bronze)
    table_exists = snapshot is not None
    if stored is not None and not table_exists:
        if log:
            log.warning(f"{name} is missing: reloading it in bulk")
        stored = None
    after = -1 if stored is None else stored.changelog_number
    mode = "bulk" if stored is None and not table_exists else "changelog"
    # A changelog load types rows by bronze's columns; only a new table is reflected.
    known = None if snapshot is None else source_columns(snapshot)
    reflected: sa.Table | sa.TableClause = (
        source.reflect(table.name, connection=connection)
        if known is None
        else sa.table(table.name, sa.column(table.change_column))
    )
    head = source.max_change(reflected, table.change_column, connection=connection)
    unusable = unusable_change_rows(
        source.unusable_changes(reflected, table.change_column, after=after, connection=connection),
        table,
    )

    rows_read = inserted = updated = tombstoned = batches = 0
    quarantined = unusable.num_rows
    rows_total = 0 if stored is None else stored.rows_loaded
    superseded_share = 0.0
    while head is not None and after < head:
        fetched = read_change_batch(
            source,
            reflected,
            change_column=table.change_column,
            after=after,
            upto=head,
            limit=table.batch_size,
            spec=table,
            connection=connection,
            schema=known,
        )
        if fetched.dropped_columns and dropped_columns == "fail":
            raise SchemaDriftError(
                f"{name}: the source no longer has column(s) "
                f"{', '.join(repr(c) for c in fetched.dropped_columns)} that bronze holds; "
                "nothing of this table was loaded. Restore the column(s), or set "
                "ehr.dropped_source_columns: load_as_null to load them empty from now on"
            )
        if fetched.dropped_columns and log and batches == 0:
            log.warning(
                f"{name}: the source no longer has column(s) "
                f"{', '.join(fetched.dropped_columns)}: loaded as empty "
                "(ehr.dropped_source_columns: load_as_null)"
            )
        if fetched.last_change is None:
            break
        batch = fetched.rows
        if fetched.rejected.num_rows:
            quarantine(delta, source_name, table.name, fetched.rejected)
            quarantined += fetched.rejected.num_rows
            if log:
                log.warning(
                    f"{name}: {fetched.rejected.num_rows} row(s) with a value of "
                    "the wrong type set aside in load_quarantine"
                )
        if batch.num_rows:
            batch = batch.append_column(LOAD_COLUMN, pa.array([head] * batch.num_rows, pa.int64()))
        if mode == "bulk" and batch.num_rows:
            # Bounded by ``head``, keyset batches of a fresh table never overlap (a row
            # changed mid-load moves above ``head``), so a plain append is exact.
            _append(delta, bronze, batch)
            inserted += batch.num_rows
        elif batch.num_rows:
            batch, superseded = newest_per_key(batch, table)
            quarantine(delta, source_name, table.name, superseded)
            if snapshot is None:
                snapshot = delta.table(bronze)
            else:
                snapshot.update_incremental()  # a compaction may have committed meanwhile
            new = unseen_rows(delta, bronze, snapshot, batch, table)
            if new.rows.num_rows:
                _append(delta, bronze, new.rows, snapshot)
            inserted += new.rows.num_rows - new.updates
            updated += new.updates
            superseded_share = new.superseded_after / max(new.bronze_rows_after, 1)
        after = fetched.last_change
        rows_read += batch.num_rows
        rows_total += batch.num_rows
        tombstoned += tombstone_count(batch, table.deleted_column)
        batches += 1
        state.set(
            source_name,
            table.name,
            changelog_number=after,
            load_mode=mode,
            rows_loaded=rows_total,
        )
        if log:
            log.info(f"{name}: batch {batches}, {rows_read} rows, changelog {after}")
        if heartbeat is not None:
            heartbeat()
        if on_batch is not None:
            on_batch(batch.num_rows)
    if unusable.num_rows:
        quarantine(delta, source_name, table.name, unusable)
        if log:
            log.warning(
                f"{name}: {unusable.num_rows} source row(s) with a change number no load can "
                "read (missing, text or a fraction) set aside in load_quarantine"
            )
    if superseded_share >= COMPACT_SUPERSEDED_SHARE:
        # Under the source's lock, so no load of this table races the rewrite.
        compaction = compact(delta, bronze, table.primary_key)
        if log and compaction.committed:
            log.info(
                f"{name}: compacted to its current rows, "
                f"{compaction.rows_removed} superseded row(s) removed"
            )
    if snapshot is None and not inserted and not delta.exists(bronze):
        # An empty source table still gets a (typed, empty) bronze table downstream can read.
        if not isinstance(reflected, sa.Table):
            reflected = source.reflect(table.name, connection=connection)
        _append(delta, bronze, bronze_schema(reflected).empty_table())
    return LoadResult(
        mode=mode,
        rows_read=rows_read,
        rows_inserted=inserted,
        rows_updated=updated,
        batches=batches,
        changelog_before=None if stored is None else stored.changelog_number,
        changelog_after=after if after >= 0 else None,
        rows_tombstoned=tombstoned,
        source_changelog_number=source.max_change(
            reflected, table.change_column, connection=connection
        ),
        rows_quarantined=quarantined,
    )


def load_metadata(
    delta: DeltaTableStore, key: dg.AssetKey, result: LoadResult, source: SqlSourceResource
) -> dict[str, Any]:
    """What a bronze load shows in the UI: counts and changelog numbers, never values."""
    return {
        **delta_table_metadata(delta, key.path),
        "load_mode": result.mode,
        "rows_read": result.rows_read,
        "rows_inserted": result.rows_inserted,
        "rows_updated": result.rows_updated,
        "rows_deleted": result.rows_tombstoned,
        "rows_quarantined": result.rows_quarantined,
        "batches": result.batches,
        "changelog_number_before": result.changelog_before,
        "changelog_number": result.changelog_after,
        "source_changelog_number": result.source_changelog_number,
        "changelog_lag": result.lag,
        "source": source.display_url(),
    }
