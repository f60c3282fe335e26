"""The persisted changelog number of every source table (``internal/etl_state``).

A load reads the number, fetches rows with a greater ``change_seq``, and advances the
number only after the bronze write has committed, so a crash can repeat a batch
(whose rows bronze already holds, so it appends nothing) but never skip one.

``table_lags`` compares the stored numbers with each source table's newest change
number: the sensor starts a load when any table lags, and ``flowehr etl head-state``
shows the lag.

Both coordination tables (this one and ``internal/etl_locks``) take one commit per
state change or heartbeat, and each commit leaves a small Parquet file and a log entry
behind. ``compact_coordination_table`` (run by the housekeeping asset) compacts them,
vacuums the unreferenced files, checkpoints the log and drops log entries older than
``COORDINATION_LOG_RETENTION``, so reads stay cheap however long the platform runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from deltalake.exceptions import CommitFailedError

from resources.delta.store import DeltaTableStore, SwapConflictError, TablePath

if TYPE_CHECKING:
    from assets.ehr.settings import SourceTable
    from resources.sql_source import SqlSourceResource

ETL_STATE_TABLE = ("internal", "etl_state")
# The history of a coordination table is for debugging only: keep a week of log entries.
COORDINATION_LOG_RETENTION = "interval 7 days"
LOG_RETENTION_PROPERTY = "delta.logRetentionDuration"
# Compare-and-swap attempts of one state write before it gives up (each loses only to
# another commit, so this bounds a storm of concurrent writers, not slowness).
_WRITE_ATTEMPTS = 20

_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("table_name", pa.string()),
        ("changelog_number", pa.int64()),
        ("load_mode", pa.string()),
        ("rows_loaded", pa.int64()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class TableState:
    """Where one source table's loads have got to."""

    source: str
    table_name: str
    changelog_number: int
    load_mode: str
    rows_loaded: int
    updated_at: datetime


class EtlStateStore:
    """Read and write changelog numbers in one small Delta table.

    A write replaces the whole (one row per source table) table in one compare-and-swap
    commit against the snapshot this store last read: as cheap as an append, and a
    concurrent write (another source's load, ``clear-state``, housekeeping) makes it
    re-read and try again rather than be lost. The snapshot is kept between a load's
    reads and writes, so a changelog load opens the table once.
    """

    def __init__(self, delta: DeltaTableStore) -> None:
        self._delta = delta
        # The (version, rows) this store read or wrote last: the next write's expectation.
        self._known: tuple[int, pa.Table] | None = None

    def _remember(self, version: int | None, rows: pa.Table | None) -> pa.Table | None:
        self._known = None if version is None or rows is None else (version, rows)
        return rows

    def all(self, source: str | None = None) -> list[TableState]:
        table = self._remember(*self._delta.versioned_rows(ETL_STATE_TABLE))
        if table is None:
            return []
        if source is not None:
            table = table.filter(pc.equal(table["source"], source))
        states = [TableState(**row) for row in table.select(_SCHEMA.names).to_pylist()]
        return sorted(states, key=lambda s: (s.source, s.table_name))

    def get(self, source: str, table_name: str) -> TableState | None:
        for state in self.all(source):
            if state.table_name == table_name:
                return state
        return None

    def set(
        self,
        source: str,
        table_name: str,
        *,
        changelog_number: int,
        load_mode: str,
        rows_loaded: int,
    ) -> None:
        row = pa.Table.from_pylist(
            [
                {
                    "source": source,
                    "table_name": table_name,
                    "changelog_number": changelog_number,
                    "load_mode": load_mode,
                    "rows_loaded": rows_loaded,
                    "updated_at": datetime.now(UTC),
                }
            ],
            schema=_SCHEMA,
        )

        def put(current: pa.Table | None) -> pa.Table:
            if current is None:
                return row
            same = pc.and_(
                pc.equal(current["source"], source), pc.equal(current["table_name"], table_name)
            )
            others = current.filter(pc.invert(pc.fill_null(same, False))).select(_SCHEMA.names)
            return pa.concat_tables([others.cast(_SCHEMA), row])

        try:
            self._remember(
                *self._delta.swap(ETL_STATE_TABLE, put, attempts=_WRITE_ATTEMPTS, known=self._known)
            )
        except SwapConflictError:
            self._known = None
            raise CommitFailedError(
                f"internal/etl_state: {_WRITE_ATTEMPTS} concurrent commits in a row; "
                f"the changelog number of {source}/{table_name} was not stored"
            ) from None

    def clear(self, source: str, table_name: str | None = None) -> int:
        """Forget changelog numbers so the next load is a bulk load; returns rows removed."""
        self._known = None
        if not self._delta.exists(ETL_STATE_TABLE):
            return 0
        predicate = f"source = '{_sql_literal(source)}'"
        if table_name is not None:
            predicate += f" AND table_name = '{_sql_literal(table_name)}'"
        metrics = self._delta.delete(ETL_STATE_TABLE, predicate)
        return int(metrics.get("num_deleted_rows", 0))


@dataclass(frozen=True)
class TableLag:
    """How far bronze is behind one source table."""

    source: str
    table_name: str
    stored: int | None
    source_head: int | None

    @property
    def lag(self) -> int:
        """Source max ``change_seq`` minus the stored changelog number (0 = up to date)."""
        if self.source_head is None:
            return 0
        return max(0, self.source_head - (self.stored if self.stored is not None else 0))

    @property
    def has_changes(self) -> bool:
        return self.lag > 0


def source_heads(source: SqlSourceResource, tables: Sequence[SourceTable]) -> dict[str, int | None]:
    """Each table's newest change number in the source (None when the table is empty).

    Raises:
        SourceUnavailableError: when the source cannot be reached.
    """
    heads: dict[str, int | None] = {}
    with source.connect() as connection:
        for table in tables:
            columns = sa.table(table.name, sa.column(table.change_column))
            heads[table.name] = source.max_change(
                columns, table.change_column, connection=connection
            )
    return heads


def table_lags(
    source_name: str,
    tables: Sequence[SourceTable],
    source: SqlSourceResource,
    state: EtlStateStore,
) -> list[TableLag]:
    """Stored against source changelog numbers for every table of one source."""
    heads = source_heads(source, tables)
    stored = {s.table_name: s.changelog_number for s in state.all(source_name)}
    return [
        TableLag(source_name, table.name, stored.get(table.name), heads[table.name])
        for table in tables
    ]


def compact_coordination_table(
    delta: DeltaTableStore, table: TablePath, *, retention_hours: int
) -> dict[str, int]:
    """Compact, vacuum and checkpoint a small, often-committed table; counts before/after.

    Safe beside live loads: a compaction that loses a race with a lock or state commit
    is skipped (the next housekeeping compacts), and the lock's compare-and-swap simply
    re-reads after a compaction commit. Files are vacuumed only once older than
    ``retention_hours``, so a reader holding an older snapshot never loses its files.
    """
    active_before, stored_before = delta.file_count(table), delta.stored_file_count(table)
    dt = delta.table(table)
    if dt.metadata().configuration.get(LOG_RETENTION_PROPERTY) != COORDINATION_LOG_RETENTION:
        try:
            dt.alter.set_table_properties({LOG_RETENTION_PROPERTY: COORDINATION_LOG_RETENTION})
        except CommitFailedError:
            pass  # a concurrent commit won; the property is set next time
    compacted = 0
    try:
        compacted = int(delta.optimize(table).get("numFilesRemoved", 0))
    except CommitFailedError:
        pass
    vacuumed = delta.vacuum(table, retention_hours=retention_hours)
    dt = delta.table(table)
    dt.create_checkpoint()
    dt.cleanup_metadata()
    return {
        "active_files_before": active_before,
        "active_files_after": delta.file_count(table),
        "stored_files_before": stored_before,
        "stored_files_after": delta.stored_file_count(table),
        "files_compacted": compacted,
        "files_vacuumed": len(vacuumed),
    }


def _sql_literal(value: str) -> str:
    return value.replace("'", "''")
