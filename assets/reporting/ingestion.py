"""Landing ingestion of the CDC ``transaction_history`` log into bronze.

Ingestion is exactly-once per landed file: each file's Delta commit records the file's
name and content hash as Delta application transactions (``txn`` actions), in the
same atomic commit as its rows. A re-run, or the same bytes delivered again under
another name, finds the marker and adds nothing; two overlapping runs cannot both
commit a file, because the markers are checked against the snapshot the commit is
made on (Delta's concurrent-transaction check rejects the second).

Landing files are ``*.jsonl`` or gzip-compressed ``*.jsonl.gz`` (``transforms.landing``):
a compressed file's content hash is that of its decompressed lines, so the same lines
landed plain and compressed are one delivery. A file that cannot be read whole
(vanished, unreadable, a truncated or corrupt gzip) gets one quarantine row with the
reason and is not marked, so it is ingested once a readable copy is there.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from assets.metadata import delta_table_metadata
from resources.delta.store import DeltaTableStore, Marked
from resources.object_store import ObjectStore
from resources.progress import Progress
from transforms.cdc import ParsedFile, with_landing_dates
from transforms.cdc_fast import parse_landed_file
from transforms.landing import LandingFileError, is_landing_file, landed_lines

LANDING_PREFIX = "landing/transaction_history"
TRANSACTION_HISTORY = dg.AssetKey(["bronze", "transaction_history"])
QUARANTINE = ("bronze", "quarantine_transaction_history")
QUARANTINE_SHARE_CHECK = "quarantine_share"
# Above this share of a run's lines in quarantine, something upstream has changed.
QUARANTINE_WARN_SHARE = 0.01
FLUSH_RECORDS = 250_000


@dataclass
class IngestStats:
    """What one landing ingestion did, for the UI."""

    files_seen: int = 0
    files_ingested: int = 0
    files_already_ingested: int = 0
    duplicate_deliveries: int = 0
    files_unreadable: int = 0
    records: int = 0
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def quarantine_share(self) -> float:
        lines = self.records + self.quarantined
        return self.quarantined / lines if lines else 0.0


def landing_marker(key: str) -> str:
    """The Delta app-transaction id that records a landed file as ingested."""
    return f"landing:{key}"


def _file_markers(key: str, digest: str) -> list[str]:
    return [landing_marker(key), f"sha256:{digest}"]


def _applied(dt: DeltaTable | None, marker: str) -> bool:
    return dt is not None and dt.transaction_version(marker) is not None


def pending_landing_keys(objects: ObjectStore, delta: DeltaTableStore) -> list[str]:
    """Landed CDC files not yet ingested into bronze, in key order."""
    history = (
        delta.table(TRANSACTION_HISTORY.path) if delta.exists(TRANSACTION_HISTORY.path) else None
    )
    return [
        key
        for key in objects.list_keys(LANDING_PREFIX)
        if is_landing_file(key) and not _applied(history, landing_marker(key))
    ]


# Bronze is partitioned by the day each file landed: the reporting windows run over it.
HISTORY_PARTITIONS = ["landing_date"]


def _commit_batch(delta: DeltaTableStore, batch: list[tuple[list[str], ParsedFile]]) -> None:
    """Quarantine first, then records, each commit carrying its files' markers.

    A crash between the two commits leaves the quarantine marked and the records not:
    the re-run skips the first and writes the second, so nothing is lost or doubled.
    """
    delta.append(QUARANTINE, [Marked(m, p.quarantine_table()) for m, p in batch], once=True)
    delta.append(
        TRANSACTION_HISTORY.path,
        [Marked(m, p.records_table()) for m, p in batch],
        once=True,
        partition_by=HISTORY_PARTITIONS,
    )


def ingest_landing_files(
    *, objects: ObjectStore, delta: DeltaTableStore, now: datetime, log: dg.DagsterLogManager
) -> IngestStats:
    """Ingest every landed file not yet in bronze, exactly once each."""
    if delta.repartition(TRANSACTION_HISTORY.path, HISTORY_PARTITIONS, fill=with_landing_dates):
        log.info("bronze/transaction_history laid out anew by landing day (once)")
    stats = IngestStats()
    batch: list[tuple[list[str], ParsedFile]] = []
    pending = 0
    # One snapshot for the whole scan: each file's markers are looked up in memory.
    history = (
        delta.table(TRANSACTION_HISTORY.path) if delta.exists(TRANSACTION_HISTORY.path) else None
    )
    keys = [key for key in objects.list_keys(LANDING_PREFIX) if is_landing_file(key)]
    to_ingest = [key for key in keys if not _applied(history, landing_marker(key))]
    stats.files_seen = len(keys)
    stats.files_already_ingested = len(keys) - len(to_ingest)
    with Progress(
        TRANSACTION_HISTORY.to_user_string(),
        log.info,
        unit="files",
        total=len(to_ingest),
        rows_unit="lines",
    ) as progress:
        for key in to_ingest:
            try:
                data = landed_lines(key, objects.read_bytes(key))
            except OSError as exc:
                # Gone (moved or expired by the sender) or unreadable (permissions).
                _quarantine_unreadable(delta, stats, key, unreadable_reason(exc), now, log)
                progress.advance()
                continue
            except LandingFileError as exc:
                _quarantine_unreadable(delta, stats, key, str(exc), now, log)
                progress.advance()
                continue
            markers = _file_markers(key, hashlib.sha256(data).hexdigest())
            if _applied(history, markers[1]) or any(markers[1] in m for m, _ in batch):
                log.warning(f"{key} repeats an ingested file's lines: recorded, not re-ingested")
                stats.duplicate_deliveries += 1
                batch.append((markers, ParsedFile()))
                progress.advance()
                continue
            parsed = parse_landed_file(data, source_file=key, now=now, quarantined_at=now)
            stats.files_ingested += 1
            stats.records += parsed.record_count
            stats.quarantined += len(parsed.quarantined)
            stats.quarantine_reasons.update(q["reason"].split(" (")[0] for q in parsed.quarantined)
            batch.append((markers, parsed))
            pending += parsed.record_count
            if pending >= FLUSH_RECORDS:
                progress.stage(f"committing {len(batch)} files")
                _commit_batch(delta, batch)
                progress.stage(None)
                batch, pending = [], 0
            progress.advance(rows=parsed.record_count + len(parsed.quarantined))
        if batch:
            progress.stage(f"committing {len(batch)} files")
            _commit_batch(delta, batch)
    return stats


def _quarantine_unreadable(
    delta: DeltaTableStore,
    stats: IngestStats,
    key: str,
    reason: str,
    now: datetime,
    log: dg.DagsterLogManager,
) -> None:
    """One quarantine row for a file that cannot be read whole; the file is not marked.

    So it is ingested when a readable copy is there, and the rest go on meanwhile; a
    later run that finds it unreadable for the same reason adds no second row.
    """
    log.warning(f"{key}: {reason}: quarantined, not marked; retried next run")
    stats.quarantined += 1
    stats.files_unreadable += 1
    stats.quarantine_reasons[reason] += 1
    if not _already_quarantined(delta, key, reason):
        delta.append(QUARANTINE, unreadable_row(key, reason, now))


VANISHED = "file vanished before it was read"


def unreadable_reason(exc: OSError) -> str:
    """Why a listed file could not be read, in words that name no content."""
    if isinstance(exc, FileNotFoundError):
        return VANISHED
    if isinstance(exc, PermissionError):
        return "file could not be read: permission denied"
    return f"file could not be read: {type(exc).__name__}"


def _already_quarantined(delta: DeltaTableStore, key: str, reason: str) -> bool:
    """Whether an earlier run recorded this file as unreadable for this reason (once is enough)."""
    if not delta.exists(QUARANTINE):
        return False
    rows = delta.table(QUARANTINE).to_pyarrow_dataset()
    found = rows.filter(
        (pc.field("_source_file") == key)
        & (pc.field("_line_number") == 0)
        & (pc.field("reason") == reason)
    ).count_rows()
    return bool(found)


def unreadable_row(key: str, reason: str, now: datetime) -> pa.Table:
    """The quarantine row of a landed file that was listed but could not be read."""
    row = {
        "_source_file": key,
        "_line_number": 0,
        "reason": reason,
        "raw_line": "",
        "_quarantined_at": now,
    }
    return ParsedFile(quarantined=[row]).quarantine_table()


def quarantine_check(stats: IngestStats) -> dg.AssetCheckResult:
    """Warn when an unusual share of this run's lines went to quarantine."""
    return dg.AssetCheckResult(
        asset_key=TRANSACTION_HISTORY,
        check_name=QUARANTINE_SHARE_CHECK,
        passed=stats.quarantine_share <= QUARANTINE_WARN_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "records_quarantined": stats.quarantined,
            "quarantine_share": round(stats.quarantine_share, 6),
            "warn_above": QUARANTINE_WARN_SHARE,
        },
    )


@dg.asset(
    key=TRANSACTION_HISTORY,
    group_name="reporting",
    kinds={"delta"},
    owners=["team:data-engineering"],
    tags={"zone": "bronze", "pii": "true"},
    check_specs=[
        dg.AssetCheckSpec(
            QUARANTINE_SHARE_CHECK,
            asset=TRANSACTION_HISTORY,
            description="At most 1% of a run's landed lines are malformed.",
        )
    ],
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
        "files_unreadable": stats.files_unreadable,
        "records_ingested": stats.records,
        "records_quarantined": stats.quarantined,
        "quarantine_reasons": dg.MetadataValue.json(dict(stats.quarantine_reasons)),
    }
    if delta.exists(TRANSACTION_HISTORY.path):
        metadata.update(delta_table_metadata(delta, TRANSACTION_HISTORY.path))
    return dg.MaterializeResult(metadata=metadata, check_results=[quarantine_check(stats)])
