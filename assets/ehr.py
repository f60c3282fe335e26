"""Bronze assets for every table of every configured EHR source database.

One factory, ``build_source_defs``, is mapped over the ``data_source_connections`` in
config: each source becomes one multi-asset with a bronze table per configured table,
so adding a table or a source is a config change, not code. A source is loaded in one
step, under the source's lock (``flowehr_pipelines.etl_lock``), so two loads of one
source never overlap whoever launched them: the schedule, the sensor or a user.

Each table goes to ``bronze/<source>/<table>``: a bulk load the first time, then
changelog loads of the rows whose ``change_seq`` exceeds the stored changelog number,
in bounded keyset batches merged by primary key (the newer ``change_seq`` wins; deletes
arrive as tombstone rows and are kept, flagged, so silver can remove them). A load
reads up to the source's newest change number *when it starts*: rows changed during
the load wait for the next one, which also keeps a bulk load's batches disjoint.

The changelog number advances only after a batch's bronze commit, so a load that dies
mid-way repeats at most one batch (the MERGE absorbs it) and never skips one.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from assets import quality_checks
from assets.metadata import delta_table_metadata
from flowehr_pipelines.config import DataSourceConnection, EhrSettings, Settings, SourceTable
from flowehr_pipelines.etl_lock import EtlLockStore, LockOwner
from flowehr_pipelines.etl_state import EtlStateStore
from resources.delta_store import DeltaTableStore
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

    A MERGE fails when two source rows match one target row, so a source that repeats a
    primary key (no key constraint) would stop the changelog load of every table.
    """
    if batch.num_rows < 2 or not duplicate_key_count(batch, list(table.primary_key)):
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


def read_change_batch(
    source: SqlSourceResource,
    table: sa.Table,
    *,
    change_column: str,
    after: int,
    upto: int,
    limit: int,
    spec: SourceTable | None = None,
) -> ChangeBatch:
    """Rows with ``after < change <= upto``, oldest first, at most ``limit``.

    Keyset pagination on the change column keeps every batch an index range scan,
    however far into the table the load has got.
    """
    change = table.c[change_column]
    query = sa.select(table).where(change > after, change <= upto).order_by(change).limit(limit)
    with source.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings().all()]
    spec = spec or SourceTable(
        name=table.name, primary_key=[c.name for c in table.primary_key] or [change_column]
    )
    good, rejected = typed_rows(rows, arrow_schema(table), table=spec)
    changes = [r[change_column] for r in rows if isinstance(r.get(change_column), int)]
    return ChangeBatch(good, rejected, max(changes) if changes else None)


def tombstone_count(batch: pa.Table, deleted_column: str | None) -> int:
    """Rows of a batch flagged as deleted in the source."""
    if deleted_column is None or deleted_column not in batch.column_names:
        return 0
    flags = batch[deleted_column]
    deleted = pc.fill_null(pc.not_equal(flags.cast(pa.int64()), 0), False)
    return int(pc.sum(deleted.cast(pa.int64())).as_py() or 0)


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
    long load keeps its lock fresh (and stops if the lock was broken).
    """
    bronze = ("bronze", source_name, table.name)
    state = EtlStateStore(delta)
    stored = state.get(source_name, table.name)
    table_exists = delta.exists(bronze)
    if stored is not None and not table_exists:
        if log:
            log.warning(f"{'/'.join(bronze)} is missing: reloading it in bulk")
        stored = None
    after = -1 if stored is None else stored.changelog_number
    mode = "bulk" if stored is None and not table_exists else "changelog"
    reflected = source.reflect(table.name)
    head = source.max_change(reflected, table.change_column)

    rows_read = inserted = updated = tombstoned = batches = 0
    rows_total = 0 if stored is None else stored.rows_loaded
    while head is not None and after < head:
        fetched = read_change_batch(
            source,
            reflected,
            change_column=table.change_column,
            after=after,
            upto=head,
            limit=table.batch_size,
            spec=table,
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
        if mode == "bulk" and batch.num_rows:
            # Bounded by ``head``, keyset batches of a fresh table never overlap (a row
            # changed mid-load moves above ``head``), so a plain append is exact.
            delta.append(bronze, batch)
            inserted += batch.num_rows
        elif batch.num_rows:
            batch, superseded = newest_per_key(batch, table)
            if superseded.num_rows:
                delta.merge(
                    load_quarantine_path(source_name, table.name),
                    superseded,
                    keys=["record_key", "change_seq"],
                )
            metrics = delta.merge(
                bronze,
                batch,
                keys=table.primary_key,
                matched_condition=f"s.`{table.change_column}` > t.`{table.change_column}`",
            )
            inserted += int(metrics.get("num_target_rows_inserted", 0))
            updated += int(metrics.get("num_target_rows_updated", 0))
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
    if not delta.exists(bronze):
        # An empty source table still gets a (typed, empty) bronze table downstream can read.
        delta.append(bronze, arrow_schema(reflected).empty_table())
    return LoadResult(
        mode=mode,
        rows_read=rows_read,
        rows_inserted=inserted,
        rows_updated=updated,
        batches=batches,
        changelog_before=None if stored is None else stored.changelog_number,
        changelog_after=after if after >= 0 else None,
        rows_tombstoned=tombstoned,
        source_changelog_number=source.max_change(reflected, table.change_column),
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
