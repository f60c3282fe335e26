"""Bronze assets for every table of every configured EHR source database.

One factory, ``build_source_defs``, is mapped over the ``data_source_connections`` in
config: each source becomes one multi-asset with a bronze table per configured table,
so adding a table or a source is a config change, not code. A source is loaded in one
step, under the source's lock (``flowehr_pipelines.etl_lock``), so two loads of one
source never overlap whoever launched them: the schedule, the sensor or a user.

Each table goes to ``bronze/<source>/<table>``: a bulk load the first time, then
changelog loads of the rows whose ``change_seq`` exceeds the stored changelog number,
in bounded keyset batches. A load reads up to the source's newest change number *when
it starts* (its head): rows changed during the load wait for the next one, which also
keeps a bulk load's batches disjoint.

Bronze is merge-on-read (``flowehr_pipelines.bronze_view``): a changelog batch is
APPENDED, each row stamped with its load's head, and a key's current rows are those
of its newest load; deletes arrive as tombstone rows and are kept, flagged, so silver
can remove them. A copy-on-write MERGE would rewrite every file that 1% of changed
rows touch, i.e. the whole table, so appending is what makes a load cost what changed.
Rows whose ``(key, change_seq)`` bronze already holds are dropped before the append,
so a replayed batch or a ``clear-state`` re-pull adds nothing. The load folds a table
back to one row per key once superseded rows pass a fifth of it.

The changelog number advances only after a batch's bronze commit, so a load that dies
mid-way repeats at most one batch (which then appends nothing) and never skips one.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from assets import quality_checks
from assets.metadata import delta_table_metadata
from flowehr_pipelines.bronze_view import COMPACT_SUPERSEDED_SHARE, LOAD_COLUMN, compact
from flowehr_pipelines.config import DataSourceConnection, EhrSettings, Settings, SourceTable
from flowehr_pipelines.etl_lock import EtlLockStore, LockOwner
from flowehr_pipelines.etl_state import EtlStateStore
from resources.delta_store import DeltaTableStore, TablePath
from resources.sql_source import SqlSourceResource, arrow_schema
from transforms.quality import duplicate_key_count

LOCK_PURPOSE = "bronze load"


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

    @property
    def lag(self) -> int:
        """Source changes not yet in bronze when the load finished."""
        if self.source_changelog_number is None:
            return 0
        return max(0, self.source_changelog_number - (self.changelog_after or 0))


LOAD_QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_table", pa.string()),
        ("record_key", pa.string()),
        ("change_seq", pa.int64()),
        ("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class ChangeBatch:
    """One keyset batch: rows that fit the table's types, the rest, and where it ended."""

    rows: pa.Table
    rejected: pa.Table
    last_change: int | None


def load_quarantine_path(source_name: str, table: str) -> tuple[str, ...]:
    """Source rows bronze cannot type (text in a number column): kept here with a reason."""
    return ("bronze", source_name, f"load_quarantine_{table}")


def type_problem(row: dict[str, Any], schema: pa.Schema) -> str | None:
    """Why a row's values do not fit the schema (names the column, never the value)."""
    for field in schema:
        value = row.get(field.name)
        try:
            pa.array([value], type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError):
            return f"{field.name}: expected {field.type}, got {type(value).__name__}"
    return None


def typed_rows(
    rows: list[dict[str, Any]], schema: pa.Schema, *, table: SourceTable
) -> tuple[pa.Table, pa.Table]:
    """Rows as Arrow; a row with a value of the wrong type is set aside with a reason.

    SQLite (and a loosely typed replica) can hold text in a number column; one such
    value must not fail the load of every table of the source.
    """
    try:
        return pa.Table.from_pylist(rows, schema=schema), LOAD_QUARANTINE_SCHEMA.empty_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError):
        pass
    good, bad = [], []
    for row in rows:
        problem = type_problem(row, schema)
        if problem is None:
            good.append(row)
            continue
        key = "|".join(
            "(missing)" if row.get(k) is None else str(row[k]) for k in table.primary_key
        )
        change = row.get(table.change_column)
        bad.append(
            {
                "source_table": table.name,
                "record_key": key,
                "change_seq": change if isinstance(change, int) else None,
                "reason": f"wrong type in source: {problem}",
            }
        )
    return (
        pa.Table.from_pylist(good, schema=schema),
        pa.Table.from_pylist(bad, schema=LOAD_QUARANTINE_SCHEMA),
    )


def newest_per_key(batch: pa.Table, table: SourceTable) -> tuple[pa.Table, pa.Table]:
    """The newest row of each key, and older copies of a repeated key as quarantine rows.

    Rows of one load are all current, so a changelog batch that repeats a key (a source
    without a key constraint) would make both copies current and undo the change: the
    newest copy is the change, the older ones go to quarantine with a reason.
    """
    if batch.num_rows < 2 or _distinct_keys(batch, table.primary_key) == batch.num_rows:
        return batch, LOAD_QUARANTINE_SCHEMA.empty_table()
    keep: dict[tuple[Any, ...], int] = {}
    rows = batch.to_pylist()
    for i, row in enumerate(rows):
        key = tuple(row[k] for k in table.primary_key)
        if key not in keep or row[table.change_column] > rows[keep[key]][table.change_column]:
            keep[key] = i
    kept = sorted(keep.values())
    older = [
        {
            "source_table": table.name,
            "record_key": "|".join(str(v) for v in (rows[i][k] for k in table.primary_key)),
            "change_seq": rows[i][table.change_column],
            "reason": "duplicate primary key in source: a newer row with this key was loaded",
        }
        for i in sorted(set(range(len(rows))) - set(kept))
    ]
    return batch.take(kept), pa.Table.from_pylist(older, schema=LOAD_QUARANTINE_SCHEMA)


def _distinct_keys(batch: pa.Table, keys: Sequence[str]) -> int:
    """How many different keys a batch holds (NULL counts as one key)."""
    if len(keys) == 1:
        return int(pc.count_distinct(batch[keys[0]], mode="all").as_py())
    return batch.num_rows - duplicate_key_count(batch, list(keys))


def read_change_batch(
    source: SqlSourceResource,
    table: sa.Table | sa.TableClause,
    *,
    change_column: str,
    after: int,
    upto: int,
    limit: int,
    spec: SourceTable | None = None,
    connection: sa.Connection | None = None,
    schema: pa.Schema | None = None,
) -> ChangeBatch:
    """Rows with ``after < change <= upto``, oldest first, at most ``limit``.

    Keyset pagination on the change column keeps every batch an index range scan,
    however far into the table the load has got. With ``schema`` (bronze's columns) the
    source table need not be reflected first: every source column is selected, and only
    a column bronze has not seen yet sends the load to the source's definition for its
    type.
    """
    change: sa.ColumnClause[Any] = sa.column(change_column)
    selected = sa.select(table) if schema is None else sa.select(sa.text("*")).select_from(table)
    query = selected.where(change > after, change <= upto).order_by(change).limit(limit)
    with source.using(connection) as connected:
        result = connected.execute(query)
        names = list(result.keys())
        tuples = result.all()
        if schema is None or not set(names) <= set(schema.names):
            reflected = (
                table
                if isinstance(table, sa.Table)
                else source.reflect(table.name, connection=connected)
            )
            schema = arrow_schema(reflected)
    typed = _columnar(names, tuples, schema)
    if typed is not None:
        changes = typed[change_column]
        last = pc.max(changes).as_py() if changes.null_count < len(changes) else None
        return ChangeBatch(typed, LOAD_QUARANTINE_SCHEMA.empty_table(), last)
    rows = [dict(zip(names, row, strict=True)) for row in tuples]
    spec = spec or SourceTable(
        name=table.name,
        primary_key=[c.name for c in getattr(table, "primary_key", [])] or [change_column],
    )
    good, rejected = typed_rows(rows, schema, table=spec)
    changes = [r[change_column] for r in rows if isinstance(r.get(change_column), int)]
    return ChangeBatch(good, rejected, max(changes) if changes else None)


def _columnar(names: list[str], rows: Sequence[Any], schema: pa.Schema) -> pa.Table | None:
    """Rows as Arrow column by column (the fast path), or None when a value does not fit
    its column's type and the rows need checking one by one."""
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = []
    try:
        for field in schema:
            if field.name in names:
                values = columns[names.index(field.name)]
                arrays.append(pa.array(values, type=field.type))
            else:  # dropped from the source since bronze saw it
                arrays.append(pa.nulls(len(rows), type=field.type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError):
        return None
    return pa.Table.from_arrays(arrays, schema=schema)


def tombstone_count(batch: pa.Table, deleted_column: str | None) -> int:
    """Rows of a batch flagged as deleted in the source."""
    if deleted_column is None or deleted_column not in batch.column_names:
        return 0
    flags = batch[deleted_column]
    deleted = pc.fill_null(pc.not_equal(flags.cast(pa.int64()), 0), False)
    return int(pc.sum(deleted.cast(pa.int64())).as_py() or 0)


def _bronze_schema(reflected: sa.Table) -> pa.Schema:
    """The source table's columns plus the load column that orders loads of one key."""
    return arrow_schema(reflected).append(pa.field(LOAD_COLUMN, pa.int64()))


def _source_columns(snapshot: DeltaTable) -> pa.Schema:
    """Bronze's schema without the load column: the source columns bronze has seen."""
    schema = pa.schema(snapshot.schema().to_arrow())
    return pa.schema([f for f in schema if f.name != LOAD_COLUMN])


def _open(delta: DeltaTableStore, table: TablePath) -> DeltaTable | None:
    """The table's newest snapshot, or None when it does not exist yet."""
    try:
        return delta.table(table)
    except TableNotFoundError:
        return None


def _append(delta: DeltaTableStore, table: TablePath, data: pa.Table, target: Any = None) -> None:
    """One append commit (to an opened snapshot when given: no second log replay)."""
    write_deltalake(
        target if target is not None else delta.uri(table),
        data,
        mode="append",
        schema_mode="merge",
        storage_options=delta.storage.options(),
    )


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
) -> LoadResult:
    """Copy new and changed rows of one source table into bronze.

    The caller holds the source's lock; ``heartbeat`` is called after every batch so a
    long load keeps its lock fresh (and stops if the lock was broken). Every source
    query of the load runs on one connection.
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
) -> LoadResult:
    bronze = ("bronze", source_name, table.name)
    state = EtlStateStore(delta)
    stored = state.get(source_name, table.name)
    snapshot = _open(delta, bronze)
    table_exists = snapshot is not None
    if stored is not None and not table_exists:
        if log:
            log.warning(f"{'/'.join(bronze)} is missing: reloading it in bulk")
        stored = None
    after = -1 if stored is None else stored.changelog_number
    mode = "bulk" if stored is None and not table_exists else "changelog"
    # A changelog load types rows by bronze's columns; only a new table is reflected.
    known = None if snapshot is None else _source_columns(snapshot)
    reflected: sa.Table | sa.TableClause = (
        source.reflect(table.name, connection=connection)
        if known is None
        else sa.table(table.name, sa.column(table.change_column))
    )
    head = source.max_change(reflected, table.change_column, connection=connection)

    rows_read = inserted = updated = tombstoned = batches = 0
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
        if fetched.last_change is None:
            break
        batch = fetched.rows
        if fetched.rejected.num_rows:
            delta.merge(
                load_quarantine_path(source_name, table.name),
                fetched.rejected,
                keys=["record_key", "change_seq"],
            )
            if log:
                log.warning(
                    f"{'/'.join(bronze)}: {fetched.rejected.num_rows} row(s) with a value of "
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
            if superseded.num_rows:
                delta.merge(
                    load_quarantine_path(source_name, table.name),
                    superseded,
                    keys=["record_key", "change_seq"],
                )
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
            log.info(f"{'/'.join(bronze)}: batch {batches}, {rows_read} rows, changelog {after}")
        if heartbeat is not None:
            heartbeat()
    if superseded_share >= COMPACT_SUPERSEDED_SHARE:
        # Under the source's lock, so no load of this table races the rewrite.
        compaction = compact(delta, bronze, table.primary_key)
        if log and compaction.committed:
            log.info(
                f"{'/'.join(bronze)}: compacted to its current rows, "
                f"{compaction.rows_removed} superseded row(s) removed"
            )
    if snapshot is None and not inserted and not delta.exists(bronze):
        # An empty source table still gets a (typed, empty) bronze table downstream can read.
        if not isinstance(reflected, sa.Table):
            reflected = source.reflect(table.name, connection=connection)
        _append(delta, bronze, _bronze_schema(reflected).empty_table())
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
        "batches": result.batches,
        "changelog_number_before": result.changelog_before,
        "changelog_number": result.changelog_after,
        "source_changelog_number": result.source_changelog_number,
        "changelog_lag": result.lag,
        "source": source.display_url(),
    }


def bronze_key(connection: DataSourceConnection, table: SourceTable) -> dg.AssetKey:
    return dg.AssetKey(["bronze", connection.name, table.name])


def build_source_defs(*, connection: DataSourceConnection, ehr: EhrSettings) -> dg.AssetsDefinition:
    """One multi-asset loading every table of one source, under the source's lock."""
    specs = [
        dg.AssetSpec(
            key=bronze_key(connection, table),
            description=(
                f"Raw `{table.name}` from the `{connection.name}` source, loaded in bulk and "
                f"then by changelog number. Restricted: holds patient identifiers. "
                f"{table.description}"
            ).strip(),
            group_name="ehr",
            kinds={"sql", "delta"},
            owners=["team:data-engineering"],
            tags={"zone": "bronze", "source": connection.name, "pii": "true"},
            skippable=True,
        )
        for table in connection.tables
    ]
    stale_after = timedelta(minutes=ehr.lock_stale_after_minutes)
    heartbeat_every = timedelta(seconds=ehr.lock_heartbeat_seconds)

    @dg.multi_asset(
        name=f"bronze_{connection.name}",
        specs=specs,
        can_subset=True,
        description=f"Load the `{connection.name}` source's tables into bronze.",
        required_resource_keys={connection.name, "delta"},
        op_tags={"dagster/concurrency_key": f"source_{connection.name}"},
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        delta: DeltaTableStore = context.resources.delta
        source: SqlSourceResource = getattr(context.resources, connection.name)
        locks = EtlLockStore(delta, stale_after=stale_after)
        owner = LockOwner.current(context.run_id, LOCK_PURPOSE)
        with locks.hold(
            connection.name, owner, log=context.log, heartbeat_every=heartbeat_every
        ) as beat:
            for table in connection.tables:
                key = bronze_key(connection, table)
                if key not in context.selected_asset_keys:
                    continue
                result = load_source_table(
                    source_name=connection.name,
                    table=table,
                    source=source,
                    delta=delta,
                    log=context.log,
                    heartbeat=beat,
                )
                yield dg.MaterializeResult(
                    asset_key=key, metadata=load_metadata(delta, key, result, source)
                )

    return _load


def build_defs(settings: Settings) -> dg.Definitions:
    """Bronze assets for every configured source, with their data-quality checks."""
    return dg.Definitions(
        assets=[
            build_source_defs(connection=connection, ehr=settings.ehr)
            for connection in settings.data_source_connections
        ],
        asset_checks=quality_checks.build_bronze_checks(settings),
    )
