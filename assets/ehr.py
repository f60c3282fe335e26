"""Bronze assets for every table of every configured EHR source database.

One factory, ``build_source_table_defs``, is mapped over the ``data_source_connections``
in config: adding a table or a source is a config change, not code. Each asset loads
its table into ``bronze/<source>/<table>``: a bulk load the first time, then changelog
loads of the rows whose ``change_seq`` exceeds the stored changelog number, in bounded
batches merged by primary key (the newer ``change_seq`` wins; deletes arrive as
tombstone rows and are kept, flagged, so downstream tables can remove them).
"""

from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.metadata import delta_table_metadata
from flowehr_pipelines.config import DataSourceConnection, Settings, SourceTable
from flowehr_pipelines.etl_state import EtlStateStore
from resources.delta_store import DeltaTableStore
from resources.sql_source import SqlSourceResource
from transforms.quality import duplicate_key_count, null_key_count

PRIMARY_KEY_CHECK = "primary_key_unique_not_null"


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


def load_source_table(
    *,
    source_name: str,
    table: SourceTable,
    source: SqlSourceResource,
    delta: DeltaTableStore,
    log: dg.DagsterLogManager | None = None,
) -> LoadResult:
    """Copy new and changed rows of one source table into bronze.

    The changelog number advances after each batch's bronze commit, so a run that dies
    mid-load resumes from its last committed batch and loses or duplicates nothing.
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

    rows_read = inserted = updated = batches = 0
    rows_total = 0 if stored is None else stored.rows_loaded
    while True:
        batch = source.read_changes(
            reflected, change_column=table.change_column, after=after, limit=table.batch_size
        )
        if batch.num_rows == 0:
            break
        if mode == "bulk":
            # Keyset batches of a fresh table never overlap, so a plain append is exact.
            delta.append(bronze, batch)
            inserted += batch.num_rows
        else:
            metrics = delta.merge(
                bronze,
                batch,
                keys=table.primary_key,
                matched_condition=f"s.`{table.change_column}` > t.`{table.change_column}`",
            )
            inserted += int(metrics.get("num_target_rows_inserted", 0))
            updated += int(metrics.get("num_target_rows_updated", 0))
        after = int(pc.max(batch[table.change_column]).as_py())
        rows_read += batch.num_rows
        rows_total += batch.num_rows
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
        if batch.num_rows < table.batch_size:
            break
    return LoadResult(
        mode=mode,
        rows_read=rows_read,
        rows_inserted=inserted,
        rows_updated=updated,
        batches=batches,
        changelog_before=None if stored is None else stored.changelog_number,
        changelog_after=after if after >= 0 else None,
    )


def primary_key_check(key: dg.AssetKey, data: pa.Table, keys: list[str]) -> dg.AssetCheckResult:
    """Blocking check: the primary key is unique and never null."""
    duplicates = duplicate_key_count(data, keys)
    nulls = null_key_count(data, keys)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=PRIMARY_KEY_CHECK,
        passed=duplicates == 0 and nulls == 0,
        metadata={"duplicate_keys": duplicates, "null_keys": nulls, "rows": data.num_rows},
    )


def build_source_table_defs(
    *, connection: DataSourceConnection, table: SourceTable
) -> dg.AssetsDefinition:
    """The bronze asset for one source table."""
    key = dg.AssetKey(["bronze", connection.name, table.name])
    description = (
        f"Raw `{table.name}` from the `{connection.name}` source, loaded in bulk and then "
        f"by changelog number. Restricted: holds patient identifiers. {table.description}"
    ).strip()

    @dg.asset(
        key=key,
        description=description,
        group_name="ehr",
        kinds={"sql", "delta"},
        owners=["team:data-engineering"],
        tags={"zone": "bronze", "source": connection.name, "pii": "true"},
        check_specs=[dg.AssetCheckSpec(PRIMARY_KEY_CHECK, asset=key, blocking=True)],
        required_resource_keys={connection.name, "delta"},
        op_tags={"dagster/concurrency_key": f"source_{connection.name}"},
    )
    def _ingest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        delta: DeltaTableStore = context.resources.delta
        source: SqlSourceResource = getattr(context.resources, connection.name)
        result = load_source_table(
            source_name=connection.name, table=table, source=source, delta=delta, log=context.log
        )
        keys = delta.read(key.path, columns=table.primary_key)
        return dg.MaterializeResult(
            metadata={
                **delta_table_metadata(delta, key.path),
                "load_mode": result.mode,
                "rows_read": result.rows_read,
                "rows_inserted": result.rows_inserted,
                "rows_updated": result.rows_updated,
                "batches": result.batches,
                "changelog_number": result.changelog_after,
                "changelog_number_before": result.changelog_before,
                "source": source.display_url(),
            },
            check_results=[primary_key_check(key, keys, table.primary_key)],
        )

    return _ingest


def build_defs(settings: Settings) -> dg.Definitions:
    """Bronze assets for every configured source table."""
    return dg.Definitions(
        assets=[
            build_source_table_defs(connection=connection, table=table)
            for connection in settings.data_source_connections
            for table in connection.tables
        ]
    )
