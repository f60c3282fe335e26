"""Walk a lake and fingerprint what it holds: every Delta table and every report file.

Shared by the reliability tests (idempotency, order independence, crash safety) and
usable by the privacy tests: ``delta_tables`` finds every table in every zone,
``table_hashes`` gives an order-independent content hash per table, ``report_files``
a byte hash per report file. Contents are compared, never Delta versions or file
layouts, because a re-run may legitimately commit a no-op or compact files.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from resources.delta.store import DeltaTableStore
from tests.lakes import local_store

# Columns that record *when* or *by which run* something happened, not *what*: they
# differ between two runs over the same data by design. Keyed by table ("zone/.../name").
BOOKKEEPING_COLUMNS: dict[str, dict[str, str]] = {
    "bronze/quarantine_transaction_history": {
        "_quarantined_at": "wall-clock time the malformed line was quarantined",
    },
    "internal/etl_state": {
        "updated_at": "wall-clock time the changelog number was stored",
    },
    "internal/reporting_housekeeping": {
        "run_id": "the Dagster run that housekept",
        "finished_at": "wall-clock time housekeeping finished",
    },
    "internal/feature_housekeeping": {
        "run_id": "the Dagster run that housekept",
        "finished_at": "wall-clock time housekeeping finished",
    },
    "internal/etl_locks": {
        "token": "random token of a lock holder",
        "run_id": "the Dagster run holding the lock",
        "pid": "the process holding the lock",
        "acquired_at": "wall-clock time the lock was taken",
        "heartbeat_at": "wall-clock time of the holder's last heartbeat",
    },
}

# Tables that are per-run logs by design: each run appends its own rows, so their
# contents grow with the number of runs. They are compared per run instead (see
# ``run_log_entries``), never excluded silently.
RUN_LOG_TABLES: dict[str, str] = {
    "internal/reporting_housekeeping": "one row per housekept table per housekeeping run",
    "internal/feature_housekeeping": "one row per feature table per housekeeping run",
}

TEMP_FILE_MARKERS = (".tmp", ".part", ".partial")


@contextmanager
def private_directory(prefix: str) -> Iterator[Path]:
    """A scratch directory of this test module's own, removed afterwards.

    Not under pytest's numbered base temp: pytest keeps only the newest few of those
    per user, so another pytest session started on a shared machine during a long
    module would delete this one's lakes from under it.
    """
    path = Path(tempfile.mkdtemp(prefix=f"flowehr-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def lake_store(lake_root: Path) -> DeltaTableStore:
    """A Delta store over a local lake (native pyarrow filesystem reads)."""
    return local_store(lake_root)


def delta_tables(lake_root: Path) -> list[str]:
    """Every Delta table under the lake, as ``zone/.../name``, in every zone."""
    return sorted(
        "/".join(log.parent.relative_to(lake_root).parts)
        for log in lake_root.rglob("_delta_log")
        if log.is_dir()
    )


def content_hash(table: pa.Table, ignore: Iterable[str] = ()) -> str:
    """Order-independent SHA-256 of a table's rows (columns by name, ``ignore`` left out).

    Duplicates count: a table holding a row twice hashes differently from one holding
    it once.
    """
    skipped = set(ignore)
    columns = sorted(c for c in table.column_names if c not in skipped)
    rows = sorted(
        repr(tuple((c, row[c]) for c in columns)) for row in table.select(columns).to_pylist()
    )
    digest = hashlib.sha256(f"{len(rows)} rows; columns {columns}\n".encode())
    for row in rows:
        digest.update(row.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def ignored_columns(name: str, extra: Mapping[str, Mapping[str, str]] | None = None) -> set[str]:
    """The bookkeeping columns left out of ``name``'s hash."""
    columns = set(BOOKKEEPING_COLUMNS.get(name, {}))
    if extra:
        columns |= set(extra.get(name, {}))
    return columns


def table_hashes(
    lake_root: Path,
    *,
    tables: Iterable[str] | None = None,
    extra_ignored: Mapping[str, Mapping[str, str]] | None = None,
    skip_run_logs: bool = True,
) -> dict[str, str]:
    """Content hash of every Delta table in the lake (or of ``tables``)."""
    store = lake_store(lake_root)
    names = delta_tables(lake_root) if tables is None else sorted(tables)
    return {
        name: content_hash(store.read(tuple(name.split("/"))), ignored_columns(name, extra_ignored))
        for name in names
        if not (skip_run_logs and name in RUN_LOG_TABLES)
    }


def row_counts(lake_root: Path, tables: Iterable[str]) -> dict[str, int]:
    store = lake_store(lake_root)
    return {name: store.read(tuple(name.split("/"))).num_rows for name in tables}


def run_log_entries(lake_root: Path, name: str, key_columns: list[str]) -> dict[str, set[tuple]]:
    """A run log's rows grouped by run: ``run_id`` -> the set of key-column tuples."""
    data = lake_store(lake_root).read(tuple(name.split("/"))).to_pylist()
    entries: dict[str, set[tuple]] = {}
    for row in data:
        entries.setdefault(row["run_id"], set()).add(tuple(row[c] for c in key_columns))
    return entries


@dataclass(frozen=True)
class ReportFile:
    """One file under ``reports/``: its bytes' hash and when it was last written."""

    sha256: str
    mtime_ns: int
    size: int


def report_files(lake_root: Path) -> dict[str, ReportFile]:
    """Every file under ``<lake>/reports`` (hidden and temporary ones included)."""
    reports = lake_root / "reports"
    if not reports.exists():
        return {}
    files: dict[str, ReportFile] = {}
    for path in sorted(p for p in reports.rglob("*") if p.is_file()):
        stat = path.stat()
        files[str(path.relative_to(reports))] = ReportFile(
            hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_size
        )
    return files


def temp_files(lake_root: Path) -> list[str]:
    """Leftovers of interrupted writes under ``reports/``: hidden or temporary files."""
    return sorted(
        name
        for name in report_files(lake_root)
        if Path(name).name.startswith(".") or Path(name).name.endswith(TEMP_FILE_MARKERS)
    )


def differing(left: Mapping[str, object], right: Mapping[str, object]) -> list[str]:
    """Keys whose values differ, or that only one side has (for readable failures)."""
    return sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k))
