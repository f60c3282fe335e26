"""The reporting domain: CDC landing files to bronze, then pass-1 projections and
pass-2 aggregations upserted with MERGE.

Ingestion is exactly-once per landed file: each file's Delta commit records the file's
name and content hash as Delta application transactions (``txn`` actions), in the
same atomic commit as its rows. A re-run, or the same bytes delivered again under
another name, finds the marker and adds nothing.

Projections keep the latest record per key from a moving window and merge with
``WHEN MATCHED AND s.timestamp > t.timestamp`` (ties broken on terminal state, then
content hash), so the result depends on neither arrival order, file split nor
re-delivery; rows outside the window are never touched.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable

from assets.metadata import delta_table_metadata
from flowehr_pipelines.config import Settings
from resources.delta_store import DeltaTableStore
from resources.object_store import ObjectStore
from resources.pseudonymiser import Pseudonymiser
from transforms.cdc import ParsedFile, parse_lines, window_start
from transforms.quality import duplicate_key_count, null_key_count
from transforms.reporting import run_sql
from transforms.reporting.calendar import local_dates

LANDING_PREFIX = "landing/transaction_history"
TRANSACTION_HISTORY = dg.AssetKey(["bronze", "transaction_history"])
QUARANTINE = ("bronze", "quarantine_transaction_history")
REQUEST_ITEM_STATUS = dg.AssetKey(["reporting", "request_item_status"])
REQUEST_ITEM_STATUS_SUMMARY = dg.AssetKey(["reporting", "request_item_status_summary"])
KEY_UNIQUE_CHECK = "key_unique_not_null"
FLUSH_RECORDS = 250_000

# Dimensions a newer record may omit: keep the stored value rather than null it.
REQUEST_ITEM_DIMENSIONS = (
    "clientid",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    "requestid",
    "requestrefid",
    "requestitemrefid",
    "patientodscode",
    "nhsnumberhash",
    "createdtime",
    "createddate",
)
SUMMARY_DIMENSIONS = ["clientid", "campaignid", "sendinggroupid", "createddate"]
SUMMARY_TOTALS = ("requesteditemcount", "completeditemcount", "faileditemcount")


class ReportingWindowConfig(dg.Config):
    """When the moving window ends; default now. Set it to replay a past cycle."""

    as_of: str | None = None

    def as_of_datetime(self) -> datetime:
        if not self.as_of:
            return datetime.now(UTC)
        parsed = datetime.fromisoformat(self.as_of.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class IngestStats:
    """What one landing ingestion did, for the UI."""

    files_seen: int = 0
    files_ingested: int = 0
    files_already_ingested: int = 0
    duplicate_deliveries: int = 0
    records: int = 0
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)


def _file_markers(key: str, digest: str) -> tuple[str, str]:
    return f"landing:{key}", f"sha256:{digest}"


def _applied(dt: DeltaTable | None, marker: str) -> bool:
    return dt is not None and dt.transaction_version(marker) is not None


def _commit_batch(
    delta: DeltaTableStore, batch: list[tuple[list[str], ParsedFile]], now: datetime
) -> None:
    """Quarantine first, then records, each commit carrying its files' markers."""
    for table, rows_of, partition_by in (
        (QUARANTINE, ParsedFile.quarantine_table, None),
        (TRANSACTION_HISTORY.path, ParsedFile.records_table, ["change_date"]),
    ):
        dt = delta.table(table) if delta.exists(table) else None
        todo = [(m, p) for m, p in batch if not _applied(dt, m[0])]
        if not todo:
            continue
        data = pa.concat_tables([rows_of(p) for _, p in todo])
        markers = [marker for m, _ in todo for marker in m]
        delta.append_marked(table, data, markers=markers, partition_by=partition_by)


def ingest_landing_files(
    *, objects: ObjectStore, delta: DeltaTableStore, now: datetime, log: dg.DagsterLogManager
) -> IngestStats:
    """Ingest every landed file not yet in bronze, exactly once each."""
    stats = IngestStats()
    batch: list[tuple[list[str], ParsedFile]] = []
    pending = 0
    # One snapshot for the whole scan: each file's markers are looked up in memory.
    history = (
        delta.table(TRANSACTION_HISTORY.path) if delta.exists(TRANSACTION_HISTORY.path) else None
    )
    for key in objects.list_keys(LANDING_PREFIX):
        if not key.endswith(".jsonl"):
            continue
        stats.files_seen += 1
        if _applied(history, f"landing:{key}"):
            stats.files_already_ingested += 1
            continue
        data = objects.read_bytes(key)
        markers = list(_file_markers(key, hashlib.sha256(data).hexdigest()))
        if _applied(history, markers[1]) or any(markers[1] in m for m, _ in batch):
            log.warning(f"{key} repeats an ingested file byte for byte: recorded, not re-ingested")
            stats.duplicate_deliveries += 1
            batch.append((markers, ParsedFile()))
            continue
        parsed = parse_lines(data.splitlines(), source_file=key, now=now, quarantined_at=now)
        stats.files_ingested += 1
        stats.records += len(parsed.records)
        stats.quarantined += len(parsed.quarantined)
        stats.quarantine_reasons.update(q["reason"].split(" (")[0] for q in parsed.quarantined)
        batch.append((markers, parsed))
        pending += len(parsed.records)
        if pending >= FLUSH_RECORDS:
            _commit_batch(delta, batch, now)
            batch, pending = [], 0
    if batch:
        _commit_batch(delta, batch, now)
    return stats


@dg.asset(
    key=TRANSACTION_HISTORY,
    group_name="reporting",
    kinds={"delta"},
    owners=["team:data-engineering"],
    tags={"zone": "bronze", "pii": "true"},
)
def transaction_history(
    context: dg.AssetExecutionContext, objects: ObjectStore, delta: DeltaTableStore
) -> dg.MaterializeResult:
    """The CDC communications log as landed, each file once, malformed lines quarantined."""
    stats = ingest_landing_files(
        objects=objects, delta=delta, now=datetime.now(UTC), log=context.log
    )
    metadata: dict[str, Any] = {
        "files_seen": stats.files_seen,
        "files_ingested": stats.files_ingested,
        "files_already_ingested": stats.files_already_ingested,
        "duplicate_deliveries": stats.duplicate_deliveries,
        "records_ingested": stats.records,
        "records_quarantined": stats.quarantined,
        "quarantine_reasons": dg.MetadataValue.json(dict(stats.quarantine_reasons)),
    }
    if delta.exists(TRANSACTION_HISTORY.path):
        metadata.update(delta_table_metadata(delta, TRANSACTION_HISTORY.path))
    return dg.MaterializeResult(metadata=metadata)


def project_request_items(
    history: pa.Table, *, window_start_ms: int, pseudonymiser: Pseudonymiser, tz: str
) -> pa.Table:
    """Latest state per request item, NHS number replaced by its keyed hash."""
    latest = run_sql(
        "request_item_status",
        {"transaction_history": history},
        {"window_start_ms": window_start_ms},
    )
    hashes = pa.array(
        [
            None if v is None else pseudonymiser.hash_value(v)
            for v in latest["nhsnumber"].to_pylist()
        ],
        type=pa.string(),
    )
    projected = latest.drop_columns(["nhsnumber"]).append_column("nhsnumberhash", hashes)
    projected = projected.append_column("createddate", local_dates(projected["createdtime"], tz))
    return projected.append_column("completeddate", local_dates(projected["completedtime"], tz))


def key_check(key: dg.AssetKey, data: pa.Table, keys: list[str]) -> dg.AssetCheckResult:
    """Blocking check that a table's key is unique and not null."""
    duplicates, nulls = duplicate_key_count(data, keys), null_key_count(data, keys)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=KEY_UNIQUE_CHECK,
        passed=duplicates == 0 and nulls == 0,
        metadata={"duplicate_keys": duplicates, "null_keys": nulls, "rows": data.num_rows},
    )


def build_defs(settings: Settings) -> dg.Definitions:
    """Landing ingestion, pass-1 projection and pass-2 aggregation."""
    reporting = settings.reporting

    @dg.asset(
        key=REQUEST_ITEM_STATUS,
        deps=[TRANSACTION_HISTORY],
        group_name="reporting",
        kinds={"sql", "delta"},
        owners=["team:reporting"],
        tags={"zone": "reporting", "pass": "1"},
        check_specs=[dg.AssetCheckSpec(KEY_UNIQUE_CHECK, asset=REQUEST_ITEM_STATUS, blocking=True)],
    )
    def request_item_status(
        config: ReportingWindowConfig, delta: DeltaTableStore, pseudonymiser: Pseudonymiser
    ) -> dg.MaterializeResult:
        """Latest status of every request item changed in the projection window (pass 1)."""
        start = window_start(config.as_of_datetime(), reporting.projection_window_days)
        history = delta.read(
            TRANSACTION_HISTORY.path, filters=[("change_date", ">=", start.isoformat())]
        )
        window_start_ms = (
            int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 1000
        )
        projected = project_request_items(
            history,
            window_start_ms=window_start_ms,
            pseudonymiser=pseudonymiser,
            tz=reporting.timezone,
        )
        updates = {
            name: (
                f"coalesce(s.`{name}`, t.`{name}`)"
                if name in REQUEST_ITEM_DIMENSIONS
                else f"s.`{name}`"
            )
            for name in projected.column_names
        }
        metrics = delta.merge(
            REQUEST_ITEM_STATUS.path,
            projected,
            keys=["requestitemid"],
            matched_condition=(
                "s.`timestamp` > t.`timestamp` OR "
                "(s.`timestamp` = t.`timestamp` AND s.`_rank` > t.`_rank`)"
            ),
            updates=updates,
        )
        stored = delta.read(REQUEST_ITEM_STATUS.path, columns=["requestitemid"])
        return dg.MaterializeResult(
            metadata={
                **delta_table_metadata(delta, REQUEST_ITEM_STATUS.path),
                "window_start": start.isoformat(),
                "source_records_in_window": history.num_rows,
                "rows_inserted": int(metrics.get("num_target_rows_inserted", 0)),
                "rows_updated": int(metrics.get("num_target_rows_updated", 0)),
            },
            check_results=[key_check(REQUEST_ITEM_STATUS, stored, ["requestitemid"])],
        )

    @dg.asset(
        key=REQUEST_ITEM_STATUS_SUMMARY,
        deps=[REQUEST_ITEM_STATUS],
        group_name="reporting",
        kinds={"sql", "delta"},
        owners=["team:reporting"],
        tags={"zone": "reporting", "pass": "2"},
    )
    def request_item_status_summary(
        config: ReportingWindowConfig, delta: DeltaTableStore
    ) -> dg.MaterializeResult:
        """Request items per client, campaign, sending group and day; totals never fall (pass 2)."""
        start = window_start(config.as_of_datetime(), reporting.aggregation_window_days)
        items = delta.read(REQUEST_ITEM_STATUS.path, filters=[("createddate", ">=", start)])
        summary = run_sql(
            "request_item_status_summary",
            {"request_item_status": items},
            {"window_start_date": start},
        )
        updates = {name: f"greatest(t.`{name}`, s.`{name}`)" for name in SUMMARY_TOTALS}
        updates["outstandingitemcount"] = "s.`outstandingitemcount`"
        metrics = delta.merge(
            REQUEST_ITEM_STATUS_SUMMARY.path,
            summary,
            keys=SUMMARY_DIMENSIONS,
            null_safe_keys=True,
            updates=updates,
        )
        return dg.MaterializeResult(
            metadata={
                **delta_table_metadata(delta, REQUEST_ITEM_STATUS_SUMMARY.path),
                "window_start": start.isoformat(),
                "rows_inserted": int(metrics.get("num_target_rows_inserted", 0)),
                "rows_updated": int(metrics.get("num_target_rows_updated", 0)),
            }
        )

    return dg.Definitions(
        assets=[transaction_history, request_item_status, request_item_status_summary]
    )
