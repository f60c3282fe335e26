"""Bronze assets for every table of every configured EHR source database.

One factory, ``build_source_defs``, is mapped over the ``data_source_connections`` in
config: each source becomes one multi-asset with a bronze table per configured table,
so adding a table or a source is a config change, not code. A source is loaded in one
step, under the source's lock (``assets.ehr.etl_lock``), so two loads of one
source never overlap whoever launched them: the schedule, the sensor or a user.

Each table goes to ``bronze/<source>/<table>``: a bulk load the first time, then
changelog loads of the rows whose ``change_seq`` exceeds the stored changelog number,
in bounded keyset batches. A load reads up to the source's newest change number *when
it starts* (its head): rows changed during the load wait for the next one, which also
keeps a bulk load's batches disjoint.

Bronze is merge-on-read (``assets.ehr.bronze_view``): a changelog batch is
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

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from assets.ehr import quality_checks
from assets.ehr.bronze_loader import (
    LOCK_PURPOSE,
    SchemaDriftError,
    load_metadata,
    load_source_table,
)
from assets.ehr.etl_lock import EtlLockStore, LockOwner
from assets.ehr.settings import DataSourceConnection, EhrDomain, EhrSettings, SourceTable
from resources.delta.store import DeltaTableStore
from resources.progress import Progress
from resources.sql_source import SqlSourceResource


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
        drifted: list[str] = []
        with locks.hold(
            connection.name, owner, log=context.log, heartbeat_every=heartbeat_every
        ) as beat:
            tables = [
                table
                for table in connection.tables
                if bronze_key(connection, table) in context.selected_asset_keys
            ]
            with Progress(
                f"bronze/{connection.name}", context.log.info, unit="tables", total=len(tables)
            ) as progress:
                for table in tables:
                    key = bronze_key(connection, table)
                    progress.stage(f"loading {table.name}")
                    try:
                        result = load_source_table(
                            source_name=connection.name,
                            table=table,
                            source=source,
                            delta=delta,
                            log=context.log,
                            heartbeat=beat,
                            dropped_columns=ehr.dropped_source_columns,
                            on_batch=lambda rows: progress.advance(0, rows=rows, batches=1),
                        )
                    except SchemaDriftError as drift:
                        # The other tables still load; this one keeps its changelog number.
                        context.log.error(str(drift))
                        drifted.append(str(drift))
                        progress.advance()
                        continue
                    progress.advance()
                    yield dg.MaterializeResult(
                        asset_key=key, metadata=load_metadata(delta, key, result, source)
                    )
        if drifted:
            raise dg.Failure(description=drifted[0] if len(drifted) == 1 else "; ".join(drifted))

    return _load


def build_defs(settings: EhrDomain) -> dg.Definitions:
    """Bronze assets for every configured source, with their data-quality checks."""
    return dg.Definitions(
        assets=[
            build_source_defs(connection=connection, ehr=settings.ehr)
            for connection in settings.data_source_connections
        ],
        asset_checks=quality_checks.build_bronze_checks(settings),
    )
