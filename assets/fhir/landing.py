"""Land one Bulk Data export into bronze, with its ``_since`` watermark in the same commits.

Each resource type has its own table, ``bronze/<source>/fhir_<type>``, merge-on-read
like the SQL bronze tables (``assets.ehr.bronze_view``): a load appends rows stamped with
the export's transaction time as ``_load_head``, a tombstone row marks a deletion, and
a resource's current row is its newest load's. Every table's commit records the
export's transaction time as a Delta app transaction (``WATERMARK``), so a table holds a
watermark exactly when it holds that export's rows. The next ``_since`` is the oldest
watermark of the source's tables: an export that died between two tables' commits is
repeated from the older one, and re-landing a resource it already holds adds nothing
(an unchanged resource, by content hash, is skipped).

Quarantined lines (with the validator's reason and the raw line: nothing is lost) and
the export's OperationOutcome issues are committed first, so a crash after them repeats
them at worst, never loses them; repeated quarantine lines are dropped by hash.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from assets.ehr.bronze_view import LOAD_COLUMN, read_current
from resources.delta.store import DeltaTableStore, TablePath
from resources.fhir_export_files import ExportFile
from transforms.fhir.ids import instant_micros, micros_instant
from transforms.fhir.ndjson import (
    Landed,
    Parsed,
    Tombstone,
    parse_deleted,
    parse_errors,
    parse_output,
)

WATERMARK = "fhir_export_since"

RESOURCE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("resource_type", pa.string()),
        ("version_id", pa.string()),
        ("last_updated", pa.string()),
        ("is_deleted", pa.bool_()),
        ("resource", pa.string()),
        ("sha256", pa.string()),
        ("transaction_time", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        (LOAD_COLUMN, pa.int64()),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("resource_type", pa.string()),
        ("id", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
        ("sha256", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("transaction_time", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)
ERROR_SCHEMA = pa.schema(
    [
        ("severity", pa.string()),
        ("code", pa.string()),
        ("diagnostics", pa.string()),
        ("source_file", pa.string()),
        ("line_number", pa.int64()),
        ("transaction_time", pa.string()),
    ]
)


def resource_table(source: str, resource_type: str) -> TablePath:
    return ("bronze", source, f"fhir_{resource_type.lower()}")


def quarantine_table(source: str) -> TablePath:
    return ("bronze", source, "fhir_quarantine")


def errors_table(source: str) -> TablePath:
    return ("bronze", source, "fhir_export_errors")


def stored_watermark(delta: DeltaTableStore, source: str, types: Iterable[str]) -> str | None:
    """The ``_since`` for the next export: the oldest table watermark (None: export all)."""
    marks = [delta.applied_version(resource_table(source, kind), WATERMARK) for kind in types]
    if not marks or any(mark is None for mark in marks):
        return None
    return micros_instant(min(mark for mark in marks if mark is not None))


def parse_export(
    files: Iterable[ExportFile],
    types: Iterable[str],
    on_file: Callable[[int], object] | None = None,
) -> Parsed:
    """Parse every downloaded file (``NdjsonError`` on a damaged one: land nothing);
    ``on_file`` gets each file's count of lines read, for the step's progress lines."""
    accepted = frozenset(types)
    parsed = Parsed()
    for file in files:
        data = file.path.read_bytes()
        if file.kind == "output":
            declared = file.resource_type
            one = parse_output(
                data, source_file=file.name, declared_type=declared, accepted=accepted
            )
        elif file.kind == "deleted":
            one = parse_deleted(data, source_file=file.name, accepted=accepted)
        else:
            one = parse_errors(data, source_file=file.name)
        parsed.extend(one)
        if on_file is not None:
            on_file(len(one.landed) + len(one.rejected) + len(one.tombstones) + len(one.issues))
    return parsed


@dataclass
class Landing:
    """What one export landed, for the asset's metadata."""

    since: str | None
    transaction_time: str
    landed: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    issues_by_severity: Counter[str] = field(default_factory=Counter)


def _resource_rows(
    landed: list[Landed], tombstones: list[Tombstone], transaction: str, load: int
) -> pa.Table:
    gone = {t.id for t in tombstones}
    newest: dict[str, Landed] = {}
    for row in landed:
        if row.id not in gone:
            newest[row.id] = row  # a repeat within one export: the later line wins
    rows = [
        {
            "id": r.id,
            "resource_type": r.resource_type,
            "version_id": r.version_id,
            "last_updated": r.last_updated,
            "is_deleted": False,
            "resource": r.resource,
            "sha256": r.sha256,
            "transaction_time": transaction,
            "source_file": r.source_file,
            "line_number": r.line_number,
            LOAD_COLUMN: load,
        }
        for r in newest.values()
    ]
    rows += [
        {
            "id": t.id,
            "resource_type": t.resource_type,
            "is_deleted": True,
            "transaction_time": transaction,
            "source_file": t.source_file,
            "line_number": t.line_number,
            LOAD_COLUMN: load,
        }
        for t in {t.id: t for t in tombstones}.values()
    ]
    return pa.Table.from_pylist(rows, schema=RESOURCE_SCHEMA)


def _changes_only(
    delta: DeltaTableStore, kind: str, path: TablePath, rows: pa.Table, *, full: bool, load: int
) -> tuple[pa.Table, int]:
    """Drop what the table's current view already says; a full export tombstones the rest.

    A resource whose content hash equals its current row's is unchanged, and a tombstone
    for a resource the table does not hold live is noise: neither is appended.

    Returns:
        The rows to append and how many unchanged resources were dropped.
    """
    if not delta.exists(path):
        return rows.filter(pc.invert(rows["is_deleted"])), 0
    current = read_current(delta, path, ["id"], columns=["id", "sha256", "is_deleted"])
    live = current.filter(pc.invert(pc.fill_null(current["is_deleted"], False)))
    known = dict(zip(live["id"].to_pylist(), live["sha256"].to_pylist(), strict=True))
    keep: list[bool] = []
    unchanged = 0
    for ident, digest, deleted in zip(
        rows["id"].to_pylist(),
        rows["sha256"].to_pylist(),
        rows["is_deleted"].to_pylist(),
        strict=True,
    ):
        same = not deleted and known.get(ident) == digest
        unchanged += same
        keep.append(ident in known if deleted else not same)
    changed = rows.filter(pa.array(keep, pa.bool_()))
    if full:
        exported = set(rows["id"].to_pylist())
        stones = [
            {"id": i, "resource_type": kind, "is_deleted": True, LOAD_COLUMN: load}
            for i in known
            if i not in exported
        ]
        if stones:
            changed = pa.concat_tables(
                [changed, pa.Table.from_pylist(stones, schema=RESOURCE_SCHEMA)]
            )
    return changed, unchanged


def land_export(
    delta: DeltaTableStore,
    *,
    source: str,
    types: list[str],
    parsed: Parsed,
    since: str | None,
    transaction_time: str,
    on_type: Callable[[], object] | None = None,
) -> Landing:
    """Commit a parsed export: quarantine and issues first, then each type with its watermark
    (``on_type`` is called as each type is committed, for the step's progress lines).

    Raises:
        ValueError: when ``transaction_time`` is not an instant, or not after a stored
            watermark (a server clock gone back would make the new rows look older than
            the ones they replace); nothing is committed then.
    """
    load = instant_micros(transaction_time)
    marks = [delta.applied_version(resource_table(source, kind), WATERMARK) for kind in types]
    newest = max((mark for mark in marks if mark is not None), default=None)
    if newest is not None and load <= newest:
        raise ValueError(
            f"the export's transactionTime {transaction_time} is not after the stored "
            f"watermark {micros_instant(newest)}; nothing was committed"
        )
    landing = Landing(since=since, transaction_time=transaction_time)
    now = datetime.now(UTC)
    _land_quarantine(delta, source, parsed, transaction_time, now, landing)
    if parsed.issues:
        issues = [{**vars(issue), "transaction_time": transaction_time} for issue in parsed.issues]
        delta.append(errors_table(source), pa.Table.from_pylist(issues, schema=ERROR_SCHEMA))
        landing.issues_by_severity.update(issue.severity for issue in parsed.issues)
    for kind in types:
        rows = _resource_rows(
            [r for r in parsed.landed if r.resource_type == kind],
            [t for t in parsed.tombstones if t.resource_type == kind],
            transaction_time,
            load,
        )
        path = resource_table(source, kind)
        changed, unchanged = _changes_only(delta, kind, path, rows, full=since is None, load=load)
        delta.append(path, changed, markers={WATERMARK: load})
        landing.unchanged[kind] = unchanged
        flags = changed["is_deleted"].to_pylist()
        landing.landed[kind] = sum(1 for f in flags if not f)
        landing.deleted[kind] = sum(1 for f in flags if f)
        if on_type is not None:
            on_type()
    return landing


def _land_quarantine(
    delta: DeltaTableStore,
    source: str,
    parsed: Parsed,
    transaction_time: str,
    now: datetime,
    landing: Landing,
) -> None:
    if not parsed.rejected:
        return
    path = quarantine_table(source)
    seen: set[str] = set()
    if delta.exists(path):
        seen = set(delta.read(path, columns=["sha256"])["sha256"].to_pylist())
    rows = []
    for bad in parsed.rejected:
        if bad.sha256 in seen:
            continue
        seen.add(bad.sha256)
        rows.append({**vars(bad), "transaction_time": transaction_time, "quarantined_at": now})
    landing.quarantined = len(parsed.rejected)
    if rows:
        delta.append(path, pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA))


def live_resources(delta: DeltaTableStore, source: str, kind: str) -> list[dict[str, Any]]:
    """The current, not deleted resources of one type, parsed (empty before any load)."""
    path = resource_table(source, kind)
    if not delta.exists(path):
        return []
    current = read_current(delta, path, ["id"], columns=["resource", "is_deleted"])
    return [
        json.loads(text)
        for text, deleted in zip(
            current["resource"].to_pylist(), current["is_deleted"].to_pylist(), strict=True
        )
        if not deleted and text is not None
    ]
