"""Housekeeping of the reporting tables: OPTIMIZE, then VACUUM.

Every MERGE into a staging table rewrites the files it touches and every watchdog
evaluation appends a small file, so the tables collect many small files and many
unreferenced ones. NHS Notify runs OPTIMIZE and VACUUM over each staging table
nightly; this asset does the same, with delta-rs (compaction, then deletion of files
no longer referenced and older than the configured retention), and logs what each
table looked like before and after to ``internal/reporting_housekeeping``.

It is an asset (group ``housekeeping``) rather than a bare op so that its runs, the
file counts and their history show in the catalogue; it depends on the staging
tables and views so it never runs while a run it is part of is still writing them.
Each staging table, view and query table also gets an observation with its
before/after file counts.
Re-running is safe: compaction of a compacted table and a second VACUUM do nothing,
and the log records a run at most once. A table whose Delta log is broken is
named and skipped; the rest are housekept, and the asset then fails with one line
naming every broken table and file (a broken log is an incident, not a quiet skip).

The ETL coordination tables (``internal/etl_state`` and ``internal/etl_locks``) take a
commit per state change or lock heartbeat; they are compacted here too, with a log
checkpoint and log cleanup, by ``compact_coordination_table``, which tolerates a
concurrent load committing to them meanwhile.

A second asset, ``internal/feature_housekeeping``, downstream of the feature tables (so it
runs after a build, in the same part of the graph), keeps their history
``housekeeping.feature_history_days`` (90) long: their log and deleted-file retention
are set to it and VACUUM honours it, so a training set's manifest (``flowehr features
training-set``) can be rebuilt for at least that long after it was made.

EHR bronze tables are appended to by changelog loads (merge-on-read): each run also
folds every bronze source table back to its current rows (``bronze_view.compact``), one
compare-and-swap commit a table that a concurrent load simply wins. A load compacts a
table itself once superseded rows pass a fifth of it; this catches the rest nightly.
"""

from datetime import UTC, datetime
from typing import Any, Protocol

import dagster as dg
import pyarrow as pa

from assets.ehr.bronze_view import compact
from assets.ehr.etl_lock import ETL_LOCK_TABLE
from assets.ehr.etl_state import ETL_STATE_TABLE, compact_coordination_table
from assets.ehr.settings import DataSourceConnection
from assets.features.tables import feature_key
from assets.metadata import delta_table_metadata
from assets.reporting.settings import HousekeepingSettings
from assets.reporting.staging import STAGING_KEYS
from assets.reporting.views import QUERY_KEYS, VIEW_KEYS
from assets.reporting.watchdogs import WATCHDOG_METRICS
from resources.delta.log_health import BrokenTableError
from resources.delta.store import DeltaTableStore, Marked, TablePath
from resources.progress import Progress
from transforms.features.pipeline import FEATURE_TABLES

HOUSEKEEPING_LOG = dg.AssetKey(["internal", "reporting_housekeeping"])
FEATURE_HOUSEKEEPING_LOG = dg.AssetKey(["internal", "feature_housekeeping"])
FEATURE_KEYS = tuple(feature_key(name) for name in FEATURE_TABLES)
HOUSEKEEPING_LOG_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("table_name", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("active_files_before", pa.int64()),
        ("active_files_after", pa.int64()),
        ("stored_files_before", pa.int64()),
        ("stored_files_after", pa.int64()),
        ("files_compacted", pa.int64()),
        ("files_vacuumed", pa.int64()),
        ("retention_hours", pa.int64()),
    ]
)


COORDINATION_TABLES: tuple[TablePath, ...] = (ETL_STATE_TABLE, ETL_LOCK_TABLE)


PUBLISHED_REPORTING_KEYS = (*STAGING_KEYS, *VIEW_KEYS, *QUERY_KEYS)


def housekept_tables() -> list[TablePath]:
    """The staging tables, the views and queries (overwritten whole every cycle, so each
    cycle leaves the last one's files behind), the watchdog time series (appended to
    hourly), and the ETL coordination tables (a commit per state change or heartbeat)."""
    return [key.path for key in PUBLISHED_REPORTING_KEYS] + [
        WATCHDOG_METRICS,
        *COORDINATION_TABLES,
    ]


def tidy_table(
    delta: DeltaTableStore, table: TablePath, *, retention_hours: int, compact: bool = True
) -> dict[str, int]:
    """Compact one table (unless ``compact`` is False), then vacuum it; file counts
    before and after.

    "Active" files are those the current version references; "stored" files are the
    data files present in storage, including ones only old versions reference.
    """
    active_before, stored_before = delta.file_count(table), delta.stored_file_count(table)
    compacted = delta.optimize(table) if compact else {}
    vacuumed = delta.vacuum(table, retention_hours=retention_hours)
    return {
        "active_files_before": active_before,
        "active_files_after": delta.file_count(table),
        "stored_files_before": stored_before,
        "stored_files_after": delta.stored_file_count(table),
        "files_compacted": int(compacted.get("numFilesRemoved", 0)),
        "files_vacuumed": len(vacuumed),
    }


def keep_feature_history(delta: DeltaTableStore, table: TablePath, *, days: int) -> dict[str, int]:
    """Keep a feature table's history ``days`` long, then VACUUM what is older.

    Not compacted: feature builds MERGE into these tables on their own schedule, and an
    OPTIMIZE commit could conflict with one; a VACUUM with a retention of days cannot
    touch a file a running build reads.
    """
    delta.keep_history(table, days=days)
    return tidy_table(delta, table, retention_hours=days * 24, compact=False)


def _log_row(
    run_id: str, table: str, retention_hours: int, counts: dict[str, int]
) -> dict[str, Any]:
    """One housekept table's row of a housekeeping log (``HOUSEKEEPING_LOG_SCHEMA``)."""
    return {
        "run_id": run_id,
        "table_name": table,
        "finished_at": datetime.now(UTC),
        "retention_hours": retention_hours,
        **counts,
    }


class HousekeepingDomain(Protocol):
    """What housekeeping reads: the retention, and the sources whose bronze it compacts."""

    @property
    def housekeeping(self) -> HousekeepingSettings: ...

    @property
    def data_source_connections(self) -> list[DataSourceConnection]: ...


def compact_bronze(
    delta: DeltaTableStore, settings: HousekeepingDomain, broken: dict[str, str] | None = None
) -> dict[str, int]:
    """Fold each EHR bronze table to its current rows; superseded rows removed per table.

    A table with a broken log is left alone and named in ``broken`` (when given).
    """
    removed: dict[str, int] = {}
    for connection in settings.data_source_connections:
        for table in connection.tables:
            path = ("bronze", connection.name, table.name)
            if not delta.exists(path):
                continue
            try:
                done = compact(delta, path, table.primary_key, min_share=0.0)
            except BrokenTableError as exc:
                if broken is None:
                    raise
                broken["/".join(path)] = str(exc)
                continue
            removed["/".join(path)] = done.rows_removed
    return removed


def _fail_if_broken(housekept: int, broken: dict[str, str]) -> None:
    """After housekeeping the rest, fail in one line naming each table with a broken log."""
    if broken:
        raise dg.Failure(
            description=(
                f"housekeeping done for {housekept} table(s), but {len(broken)} have a "
                f"broken Delta log: {'; '.join(broken.values())}"
            ),
            metadata={"broken_tables": dg.MetadataValue.json(broken)},
        )


def build_defs(settings: HousekeepingDomain) -> dg.Definitions:
    """The housekeeping asset."""
    retention = settings.housekeeping.vacuum_retention_hours

    @dg.asset(
        key=HOUSEKEEPING_LOG,
        deps=list(PUBLISHED_REPORTING_KEYS),
        group_name="housekeeping",
        kinds={"delta"},
        owners=["team:data-engineering"],
        tags={"zone": "internal"},
    )
    def reporting_housekeeping(
        context: dg.AssetExecutionContext, delta: DeltaTableStore
    ) -> dg.MaterializeResult:
        """OPTIMIZE and VACUUM of every reporting table, with file counts before/after."""
        rows: list[dict[str, Any]] = []
        by_table: dict[str, dict[str, int]] = {}
        skipped: list[str] = []
        broken: dict[str, str] = {}
        tables = housekept_tables()
        with Progress(
            HOUSEKEEPING_LOG.to_user_string(), context.log.info, unit="tables", total=len(tables)
        ) as progress:
            for table in tables:
                name = "/".join(table)
                progress.stage(f"OPTIMIZE and VACUUM of {name}")
                if not delta.exists(table):
                    skipped.append(name)
                    progress.advance()
                    continue
                tidy = compact_coordination_table if table in COORDINATION_TABLES else tidy_table
                try:
                    counts = by_table[name] = tidy(delta, table, retention_hours=retention)
                except BrokenTableError as exc:  # the others are still housekept
                    broken[name] = str(exc)
                    context.log.error(str(exc))
                    progress.advance()
                    continue
                rows.append(_log_row(context.run.run_id, name, retention, counts))
                if dg.AssetKey(list(table)) in PUBLISHED_REPORTING_KEYS:
                    context.log_event(
                        dg.AssetObservation(asset_key=dg.AssetKey(list(table)), metadata=counts)
                    )
                progress.advance()
            progress.stage("folding superseded bronze rows")
            folded = compact_bronze(delta, settings, broken)
        log = pa.Table.from_pylist(rows, schema=HOUSEKEEPING_LOG_SCHEMA)
        marked = Marked([f"housekeeping:{context.run.run_id}"], log)
        delta.append(HOUSEKEEPING_LOG.path, [marked], once=True)
        _fail_if_broken(len(rows), broken)
        return dg.MaterializeResult(
            metadata={
                **delta_table_metadata(delta, HOUSEKEEPING_LOG.path),
                "tables_housekept": len(rows),
                "tables_not_yet_created": dg.MetadataValue.json(skipped),
                "retention_hours": retention,
                "active_files_before": sum(r["active_files_before"] for r in rows),
                "active_files_after": sum(r["active_files_after"] for r in rows),
                "stored_files_before": sum(r["stored_files_before"] for r in rows),
                "stored_files_after": sum(r["stored_files_after"] for r in rows),
                "by_table": dg.MetadataValue.json(by_table),
                "bronze_superseded_rows_removed": dg.MetadataValue.json(folded),
            }
        )

    history_days = settings.housekeeping.feature_history_days

    @dg.asset(
        key=FEATURE_HOUSEKEEPING_LOG,
        deps=list(FEATURE_KEYS),
        group_name="housekeeping",
        kinds={"delta"},
        owners=["team:data-engineering"],
        tags={"zone": "internal"},
    )
    def feature_housekeeping(
        context: dg.AssetExecutionContext, delta: DeltaTableStore
    ) -> dg.MaterializeResult:
        """Feature tables keep feature_history_days of versions; VACUUM removes what is older."""
        rows: list[dict[str, Any]] = []
        skipped: list[str] = []
        broken: dict[str, str] = {}
        for key in FEATURE_KEYS:
            name = key.to_user_string()
            if not delta.exists(key.path):
                skipped.append(name)
                continue
            try:
                counts = keep_feature_history(delta, key.path, days=history_days)
            except BrokenTableError as exc:
                broken[name] = str(exc)
                context.log.error(str(exc))
                continue
            rows.append(_log_row(context.run.run_id, name, history_days * 24, counts))
            context.log_event(dg.AssetObservation(asset_key=key, metadata=counts))
        log = pa.Table.from_pylist(rows, schema=HOUSEKEEPING_LOG_SCHEMA)
        marked = Marked([f"feature-housekeeping:{context.run.run_id}"], log)
        delta.append(FEATURE_HOUSEKEEPING_LOG.path, [marked], once=True)
        _fail_if_broken(len(rows), broken)
        return dg.MaterializeResult(
            metadata={
                **delta_table_metadata(delta, FEATURE_HOUSEKEEPING_LOG.path),
                "tables_housekept": len(rows),
                "tables_not_yet_created": dg.MetadataValue.json(skipped),
                "history_days": history_days,
                "files_vacuumed": sum(r["files_vacuumed"] for r in rows),
            }
        )

    return dg.Definitions(assets=[reporting_housekeeping, feature_housekeeping])
