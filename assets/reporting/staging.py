"""The reporting domain: pass-1 projections and pass-2 aggregations upserted with MERGE,
over the CDC log that ``assets.reporting.ingestion`` lands in bronze.

The staging tables are built from specs (``transforms.reporting.staging``): one
factory makes every pass-1 projection (latest record per key over a moving window,
MERGE ``WHEN MATCHED AND s.timestamp > t.timestamp`` with a terminal-state and
content-hash tie-break and COALESCE on dimensions) and another every pass-2
aggregation (grouped over the projection's window, MERGE on null-safe dimensions,
totals through ``greatest``). Pass 2 depends on pass 1 in the asset graph, so a run
always projects before it aggregates. Rows outside the window are never touched, so
records expiring from the source or leaving the window never change staging rows.
"""

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds
from deltalake.exceptions import DeltaError

from assets.metadata import delta_table_metadata
from assets.reporting import views, watchdogs
from assets.reporting.as_of import AsOfConfig
from assets.reporting.ingestion import TRANSACTION_HISTORY, transaction_history
from assets.reporting.settings import ReportingDomain, ReportingSettings
from resources.delta.store import DeltaTableStore, Matched, TablePath
from resources.progress import Progress
from resources.pseudonymiser import Pseudonymiser
from transforms.cdc import TRANSACTION_HISTORY_SCHEMA, months_before, window_start
from transforms.identifiers import nhs_notify_hash
from transforms.quality import duplicate_key_count, null_key_count, refuse_identifiers
from transforms.reporting import run_query, staging
from transforms.reporting.staging import (
    AGGREGATIONS,
    PROJECTIONS,
    AggregationSpec,
    ProjectionSpec,
    project,
    projection_merge_clauses,
)

KEY_UNIQUE_CHECK = "key_unique_not_null"


def staging_key(table: str) -> dg.AssetKey:
    """The asset key (and Delta path) of a staging table: ``reporting/<table>``."""
    return dg.AssetKey(["reporting", table])


REQUEST_ITEM_STATUS = staging_key(staging.REQUEST_ITEM_STATUS.table)
REQUEST_ITEM_PLAN_STATUS = staging_key(staging.REQUEST_ITEM_PLAN_STATUS.table)
CLIENT_LATEST_NAME = staging_key(staging.CLIENT_LATEST_NAME.table)
REQUEST_ITEM_STATUS_SUMMARY = staging_key(staging.REQUEST_ITEM_STATUS_SUMMARY.table)
REQUEST_ITEM_PLAN_COMPLETED_SUMMARY = staging_key(staging.REQUEST_ITEM_PLAN_COMPLETED_SUMMARY.table)
STAGING_KEYS: tuple[dg.AssetKey, ...] = tuple(
    staging_key(table) for table in [p.table for p in PROJECTIONS] + [a.table for a in AGGREGATIONS]
)


def key_check(key: dg.AssetKey, data: pa.Table, keys: list[str]) -> dg.AssetCheckResult:
    """Blocking check that a table's key is unique and not null."""
    duplicates, nulls = duplicate_key_count(data, keys), null_key_count(data, keys)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=KEY_UNIQUE_CHECK,
        passed=duplicates == 0 and nulls == 0,
        metadata={"duplicate_keys": duplicates, "null_keys": nulls, "rows": data.num_rows},
    )


# App-transaction markers a staging table's commits carry: which version of its source
# the table has taken in, and over which window. They make the next cycle incremental.
SOURCE_VERSION_MARKER = "reporting:source_version"
WINDOW_START_MARKER = "reporting:window_start"
WINDOW_DAYS_MARKER = "reporting:window_days"


def read_history_window(
    delta: DeltaTableStore,
    start_date: date,
    *,
    version: int | None = None,
    added_after: int | None = None,
) -> pa_ds.Dataset:
    """Bronze records of the files that landed on or after a day; empty before the first ingest.

    NHS Notify's window: by landing day, so a record that arrives late is still taken in.
    A lazy scan of the window's ``landing_date`` partitions only (and with
    ``added_after``, only of files committed after that version): the SQL engine
    reads just the columns it needs, so the cost follows the window, not the history.
    """
    if not delta.exists(TRANSACTION_HISTORY.path):
        return pa_ds.dataset(TRANSACTION_HISTORY_SCHEMA.empty_table())
    return delta.dataset(
        TRANSACTION_HISTORY.path,
        where=[("landing_date", ">=", start_date.isoformat())],
        version=version,
        added_after=added_after,
    )


def taken_in_version(
    delta: DeltaTableStore, target: TablePath, start: date, window_days: int
) -> int | None:
    """The source version a staging table already holds everything of, for this window.

    A MERGE that moves a row only towards a greater record is order-independent, so
    records already merged need not be merged again: a cycle over the same window
    length whose start has not moved back needs only the source's newer files. Any
    other case (first load, a longer initial window, a replay of the past) answers
    None: take in the whole window.
    """
    if not delta.exists(target):
        return None
    dt = delta.table(target)
    recorded_start = dt.transaction_version(WINDOW_START_MARKER)
    if (
        recorded_start is None
        or recorded_start > start.toordinal()
        or dt.transaction_version(WINDOW_DAYS_MARKER) != window_days
    ):
        return None
    return dt.transaction_version(SOURCE_VERSION_MARKER)


def _markers(source_version: int | None, start: date, window_days: int) -> dict[str, int] | None:
    if source_version is None:
        return None
    return {
        SOURCE_VERSION_MARKER: source_version,
        WINDOW_START_MARKER: start.toordinal(),
        WINDOW_DAYS_MARKER: window_days,
    }


def refresh_projection(
    spec: ProjectionSpec,
    *,
    delta: DeltaTableStore,
    pseudonymise: Callable[[str], str],
    as_of: datetime,
    window_days: int,
    tz: str,
    initial_window_days: int | None = None,
    hash_identifier: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Project a window of bronze and MERGE it into ``reporting/<table>``.

    Args:
        spec: which projection.
        delta: the lake.
        pseudonymise: keyed hash for identifiers.
        as_of: when the window ends.
        window_days: the moving window.
        tz: the reporting time zone.
        initial_window_days: the (longer) window of the first load, while the table
            does not exist yet: NHS Notify's migration load.
        hash_identifier: the NHS number's hash, when not ``pseudonymise``.

    Returns:
        Counts for the asset's metadata.
    """
    target = staging_key(spec.table).path
    if initial_window_days is not None and not delta.exists(target):
        window_days = max(window_days, initial_window_days)
    start = window_start(as_of, window_days)
    source_version = delta.version(TRANSACTION_HISTORY.path)
    since = taken_in_version(delta, target, start, window_days)
    if since is not None and source_version is not None and since > source_version:
        since = None  # the source was recreated: start again from its whole window
    history = _history_since(delta, start, source_version, since)
    projected = project(
        spec,
        history,
        pseudonymise=pseudonymise,
        tz=tz,
        hash_identifier=hash_identifier,
    )
    # Column names only: a schema check costs nothing at any scale.
    refuse_identifiers(projected, destination="/".join(target), values=False)
    partition_by = [spec.partition_by] if spec.partition_by else None
    if partition_by:
        # A table an earlier version wrote unpartitioned is laid out anew, once.
        delta.repartition(target, partition_by)
    metrics = delta.merge(
        target,
        projected,
        keys=[spec.key],
        matched=[
            Matched(where=where, set=columns)
            for where, columns in projection_merge_clauses(spec, projected.column_names)
        ],
        prune=True,
        partition_by=partition_by,
        # Nothing new taken in: leave the markers (and the table) as they are.
        markers=None if since == source_version else _markers(source_version, start, window_days),
    )
    return {
        "window_start": start.isoformat(),
        "incremental_after_source_version": -1 if since is None else since,
        "source_records_in_window": history.count_rows(),
        "keys_in_window": projected.num_rows,
        "rows_inserted": metrics.inserted,
        "rows_updated": metrics.updated,
    }


def _history_since(
    delta: DeltaTableStore, start: date, version: int | None, since: int | None
) -> pa_ds.Dataset:
    """The window's records, or only those committed after ``since`` when it is known."""
    if since is None or since == version:
        if since is not None:
            return pa_ds.dataset(TRANSACTION_HISTORY_SCHEMA.empty_table())
        return read_history_window(delta, start, version=version)
    try:
        return read_history_window(delta, start, version=version, added_after=since)
    except DeltaError:  # that version's log was cleaned up: read the whole window
        return read_history_window(delta, start, version=version)


ALL_CLIENTS = "*"  # in reporting.batch_client_ids: every client gets batch tables


def refresh_aggregation(
    spec: AggregationSpec,
    *,
    delta: DeltaTableStore,
    as_of: datetime,
    window_days: int | None = None,
    window_months: int = 1,
    initial_window_days: int | None = None,
    batch_client_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """Aggregate a projection's window and MERGE it into ``reporting/<table>``.

    The window is the rows created on or after ``window_months`` calendar months before
    the as-of date (NHS Notify's), or ``window_days`` days when given. Groups match
    null-safely (a NULL campaign is a group too); running totals only rise,
    point-in-time counts are replaced; an unchanged group is not rewritten. The first
    load (table absent) uses ``initial_window_days`` when it is longer.
    """
    target = staging_key(spec.table).path
    if window_days is None:
        start = months_before(as_of, window_months)
        window_days = (as_of.astimezone(UTC).date() - start).days
    else:
        start = window_start(as_of, window_days)
    if initial_window_days is not None and not delta.exists(target):
        if initial_window_days > window_days:
            window_days = initial_window_days
            start = window_start(as_of, window_days)
    source_path = staging_key(spec.source).path
    source_version = delta.version(source_path)
    since = taken_in_version(delta, target, start, window_days)
    if source_version is not None and since == source_version:
        # The projection has not changed since this table took it in, and a window
        # that only moved forward drops groups without changing the others.
        return {
            "window_start": start.isoformat(),
            "incremental_after_source_version": source_version,
            "source_rows_in_window": 0,
            "groups_in_window": 0,
            "rows_inserted": 0,
            "rows_updated": 0,
        }
    # Files whose statistics rule the window out are not even opened; after a cycle
    # that changed a few days of the projection, only those days are read again.
    where: list[tuple[str, str, Any]] = [(spec.window_column, ">=", start)]
    changed = None
    if since is not None and source_version is not None and since < source_version:
        changed = changed_partition_values(delta, source_path, spec.window_column, since)
    if changed is not None:
        where.append((spec.window_column, "in", sorted(d for d in changed if d is not None)))
    if spec.batch_clients_only and ALL_CLIENTS not in batch_client_ids:
        # NHS Notify's batch tables: only the listed clients (none when the list is empty).
        where.append(("clientid", "in", sorted(batch_client_ids)))
    source = delta.dataset(source_path, where=where, version=source_version)
    summary = run_query(spec.sql(), {spec.source: source}, {"window_start_date": start})
    if spec.batch_clients_only and ALL_CLIENTS not in batch_client_ids:
        # The dataset's filter only skips files: every client shares the created-date
        # files, so the groups of unlisted clients are dropped here.
        listed = pa.array(sorted(batch_client_ids), pa.string())
        summary = summary.filter(pc.fill_null(pc.is_in(summary["clientid"], listed), False))
    refuse_identifiers(summary, destination=spec.table, values=False)
    acts = " OR ".join(
        [f"s.`{n}` > t.`{n}`" for n in spec.totals]
        + [f"s.`{n}` IS DISTINCT FROM t.`{n}`" for n in spec.current]
    )
    metrics = delta.merge(
        staging_key(spec.table).path,
        summary,
        keys=list(spec.dimensions),
        matched=[Matched(where=acts, set=spec.updates())],
        prune=True,
        null_safe_keys=True,
        markers=_markers(source_version, start, window_days),
    )
    return {
        "window_start": start.isoformat(),
        "incremental_after_source_version": -1 if changed is None else since,
        "source_rows_in_window": source.count_rows(filter=pc.field(spec.window_column) >= start),
        "groups_in_window": summary.num_rows,
        "rows_inserted": metrics.inserted,
        "rows_updated": metrics.updated,
    }


def changed_partition_values(
    delta: DeltaTableStore, table: TablePath, column: str, since: int
) -> set[Any] | None:
    """The values of ``column`` whose partitions changed after version ``since``.

    Every group of a pass-2 aggregation lies within one created date, so only the
    groups of these dates can differ from what the aggregation took in at ``since``.
    A partition changed if a file was added to it or removed from it. None when that
    cannot be told: the table is not partitioned by ``column``, or the log of
    ``since`` is gone.
    """
    current = delta.table(table)
    if list(current.metadata().partition_columns) != [column]:
        return None
    try:
        earlier = delta.table(table, version=since)
    except DeltaError:
        return None
    if list(earlier.metadata().partition_columns) != [column]:
        return None

    def files(dt: Any) -> dict[str, Any]:
        actions = dt.get_add_actions(flatten=True)
        return dict(
            zip(
                actions.column("path").to_pylist(),
                actions.column(f"partition.{column}").to_pylist(),
                strict=True,
            )
        )

    now, then = files(current), files(earlier)
    return {now[p] for p in now.keys() - then.keys()} | {then[p] for p in then.keys() - now.keys()}


def identifier_hash(
    reporting: ReportingSettings, pseudonymiser: Pseudonymiser
) -> Callable[[str], str] | None:
    """NHS Notify's NHS-number hash when configured; None keeps the keyed HMAC."""
    if reporting.nhsnumber_hash != "nhs_notify":
        return None
    key = pseudonymiser.key_bytes()
    return functools.partial(nhs_notify_hash, key)


def build_projection_defs(*, spec: ProjectionSpec, settings: ReportingDomain) -> dg.Definitions:
    """One pass-1 projection asset, with its blocking key check."""
    key = staging_key(spec.table)
    reporting = settings.reporting

    @dg.asset(
        key=key,
        deps=[TRANSACTION_HISTORY],
        description=spec.description,
        group_name="reporting",
        kinds={"sql", "delta"},
        owners=["team:reporting"],
        tags={"zone": "reporting", "pass": "1"},  # nosec B105: a tag value, not a password
        check_specs=[
            dg.AssetCheckSpec(
                KEY_UNIQUE_CHECK,
                asset=key,
                blocking=True,
                description="Each staging row's key is unique and never null, so MERGE "
                "upserts stay one row per key.",
            )
        ],
    )
    def _projection(
        context: dg.AssetExecutionContext,
        config: AsOfConfig,
        delta: DeltaTableStore,
        pseudonymiser: Pseudonymiser,
    ) -> dg.MaterializeResult:
        """A pass-1 projection of the CDC log (see the asset's description)."""
        with Progress(key.to_user_string(), context.log.info) as progress:
            progress.stage("projecting the CDC history window and merging")
            counts = refresh_projection(
                spec,
                delta=delta,
                pseudonymise=pseudonymiser.hash_value,
                as_of=config.as_of_datetime(),
                window_days=reporting.projection_window_days,
                tz=reporting.timezone,
                initial_window_days=reporting.initial_window_days,
                hash_identifier=identifier_hash(reporting, pseudonymiser),
            )
        stored = delta.read(key.path, columns=[spec.key])
        return dg.MaterializeResult(
            metadata={**delta_table_metadata(delta, key.path), **counts},
            check_results=[key_check(key, stored, [spec.key])],
        )

    return dg.Definitions(assets=[_projection])


def build_aggregation_defs(*, spec: AggregationSpec, settings: ReportingDomain) -> dg.Definitions:
    """One pass-2 aggregation asset, downstream of the projection it reads."""
    key = staging_key(spec.table)
    reporting = settings.reporting

    @dg.asset(
        key=key,
        deps=[staging_key(spec.source)],
        description=spec.description,
        group_name="reporting",
        kinds={"sql", "delta"},
        owners=["team:reporting"],
        tags={"zone": "reporting", "pass": "2"},  # nosec B105: a tag value, not a password
    )
    def _aggregation(config: AsOfConfig, delta: DeltaTableStore) -> dg.MaterializeResult:
        """A pass-2 aggregation of a projection (see the asset's description)."""
        counts = refresh_aggregation(
            spec,
            delta=delta,
            as_of=config.as_of_datetime(),
            window_days=reporting.aggregation_window_days,
            window_months=reporting.aggregation_window_months,
            initial_window_days=reporting.initial_window_days,
            batch_client_ids=reporting.batch_client_ids,
        )
        return dg.MaterializeResult(metadata={**delta_table_metadata(delta, key.path), **counts})

    return dg.Definitions(assets=[_aggregation])


def build_defs(settings: ReportingDomain) -> dg.Definitions:
    """Landing ingestion, every pass-1 projection and pass-2 aggregation, and the watchdogs."""
    return dg.Definitions.merge(
        dg.Definitions(assets=[transaction_history]),
        *[build_projection_defs(spec=spec, settings=settings) for spec in PROJECTIONS],
        *[build_aggregation_defs(spec=spec, settings=settings) for spec in AGGREGATIONS],
        watchdogs.build_defs(settings),
        views.build_defs(settings),
    )
