"""Parse landed CDC transaction-log lines into typed rows or quarantined lines.

A line is either a record (typed to ``TRANSACTION_HISTORY_SCHEMA``) or a quarantine
row naming the file, the line number and why: nothing is dropped silently, and one
bad line never stops a file. Fields the schema does not know are kept as JSON in
``_extra`` so a new upstream field survives until the schema learns it.

Hand-rolled rather than ``pyarrow.json`` or DuckDB's reader: those reject or null a
whole batch on one bad value, and lose the line number a quarantine row needs.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

SK_PREFIXES = ("REQUEST_ITEM#", "REQUEST_ITEM_PLAN#", "CLIENT#")
MAX_LINE_BYTES = 1_000_000
MAX_QUARANTINED_LINE_CHARS = 4_000
UTF8_BOM = b"\xef\xbb\xbf"
# Records before this are legacy junk; after "now + 1 day" they are clock errors.
EARLIEST_TIMESTAMP_MS = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp() * 1000)
FUTURE_TOLERANCE_MS = 24 * 3600 * 1000
# A date field before this is a default or sentinel value (0001-01-01, the 1970 epoch),
# not a real event: its report day would never come and its local time may not exist.
EARLIEST_DATE_MS = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000)

# The fields of each record kind, in the order senders write them (docs/CONTRACTS.md §4).
# NHS Notify's names and meanings: the reporting SQL reads every one of them.
REQUEST_ITEM_FIELDS = (
    "pk",
    "sk",
    "timestamp",
    "clientid",
    "clientname",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    "sendinggroupname",
    "sendinggroupcreateddate",
    "requestid",
    "requestrefid",
    "requestitemid",
    "requestitemrefid",
    "nhsnumber",
    "createddate",
    "completeddate",
    "status",
    "failedreason",
    "failedreasoncode",
    "completedcommunicationtypes",
    "failedcommunicationtypes",
    "patientodscode",
    "billingref",
)
# What a plan repeats of its item: the client, campaign, sending group and the ids.
ITEM_IDENTITY_FIELDS = (
    "clientid",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    "requestid",
    "requestrefid",
    "requestitemid",
    "requestitemrefid",
)
REQUEST_ITEM_PLAN_FIELDS = (
    "pk",
    "sk",
    "timestamp",
    *ITEM_IDENTITY_FIELDS,
    "requestitemplanid",
    "createddate",
    "completeddate",
    "datesent",
    "status",
    "failedreason",
    "failedreasoncode",
    "communicationtype",
    "supplier",
    "channeltype",
    "ordernumber",
    "contactdetailsource",
    "recipientcontactid",
    "templateid",
    "specificationid",
    "specificationbillingid",
    "messagelength",
    "messagelengthunits",
    "senderodscode",
)
DATE_FIELDS = ("createddate", "completeddate", "sendinggroupcreateddate", "datesent")
LIST_FIELDS = ("completedcommunicationtypes", "failedcommunicationtypes")
INT_FIELDS = ("ordernumber", "messagelength")
# Bronze column order: the fields of the first schema, then those learnt since.
STRING_FIELDS = (
    "pk",
    "sk",
    "clientid",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    "requestid",
    "requestrefid",
    "requestitemid",
    "requestitemrefid",
    "requestitemplanid",
    "nhsnumber",
    "status",
    "failedreason",
    "failedreasoncode",
    "communicationtype",
    "supplier",
    "channeltype",
    "patientodscode",
    "clientname",
    "sendinggroupname",
    "billingref",
    "contactdetailsource",
    "recipientcontactid",
    "templateid",
    "specificationid",
    "specificationbillingid",
    "messagelengthunits",
    "senderodscode",
)
KNOWN_FIELDS = frozenset((*STRING_FIELDS, *DATE_FIELDS, *LIST_FIELDS, *INT_FIELDS, "timestamp"))

TRANSACTION_HISTORY_SCHEMA = pa.schema(
    [
        *[(name, pa.string()) for name in STRING_FIELDS],
        ("timestamp", pa.int64()),
        *[(name, pa.timestamp("ms", tz="UTC")) for name in DATE_FIELDS],
        *[(name, pa.list_(pa.string())) for name in LIST_FIELDS],
        *[(name, pa.int64()) for name in INT_FIELDS],
        ("_extra", pa.string()),
        ("_record_hash", pa.string()),
        ("_source_file", pa.string()),
        ("_line_number", pa.int64()),
        ("change_date", pa.string()),
        ("landing_date", pa.string()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("_source_file", pa.string()),
        ("_line_number", pa.int64()),
        ("reason", pa.string()),
        ("raw_line", pa.string()),
        ("_quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


class RecordError(ValueError):
    """Why one line cannot be a record."""


@dataclass
class ParsedFile:
    """The records and quarantined lines of one landed file.

    Records come as dicts from the per-line path and as ready-built tables from the
    vectorised path (``transforms.cdc_fast``); ``records_table`` merges both in line
    order, so the result does not depend on which path took which line.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    record_tables: list[pa.Table] = field(default_factory=list)
    landing_date: str | None = None  # the day the file landed, stamped on every record

    @property
    def record_count(self) -> int:
        return len(self.records) + sum(t.num_rows for t in self.record_tables)

    def records_table(self) -> pa.Table:
        return self._with_landing_date(self._records_in_line_order())

    def _records_in_line_order(self) -> pa.Table:
        table = pa.Table.from_pylist(self.records, schema=TRANSACTION_HISTORY_SCHEMA)
        if not self.record_tables:
            return table
        parts = [t for t in (table, *self.record_tables) if t.num_rows]
        if len(parts) <= 1:
            return parts[0] if parts else table
        merged = pa.concat_tables(parts)
        numbers = merged.column("_line_number")
        if pc.all(pc.less(numbers[:-1], numbers[1:])).as_py():
            return merged
        return merged.sort_by("_line_number")

    def _with_landing_date(self, table: pa.Table) -> pa.Table:
        at = table.schema.get_field_index("landing_date")
        value = pa.scalar(self.landing_date, pa.string())
        return table.set_column(at, "landing_date", pa.repeat(value, table.num_rows))

    def quarantine_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.quarantined, schema=QUARANTINE_SCHEMA)


def parse_iso_datetime(value: str, field_name: str) -> datetime:
    """ISO 8601 to an aware UTC datetime.

    Raises:
        RecordError: when the text is not ISO 8601.
    """
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"{field_name} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise RecordError(f"{field_name} is out of the representable range") from None


def check_date_range(record: dict[str, Any], *, now_ms: int) -> None:
    """Date fields must be plausible: from 2000 to a day after now, completed after created.

    Raises:
        RecordError: naming the field and the bound it breaks.
    """
    for name in DATE_FIELDS:
        value = record[name]
        if value is None:
            continue
        ms = int(value.timestamp() * 1000)
        if ms < EARLIEST_DATE_MS:
            raise RecordError(f"{name} is before 2000")
        if ms > now_ms + FUTURE_TOLERANCE_MS:
            raise RecordError(f"{name} is in the future")
    created, completed = record["createddate"], record["completeddate"]
    if created is not None and completed is not None and completed < created:
        raise RecordError("completeddate is before createddate")


def _string(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, dict | list):
        raise RecordError(f"{name} must be text, got {type(value).__name__}")
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise RecordError(f"{name} must be text, got {type(value).__name__}")
    if "\x00" in value:
        raise RecordError(f"{name} contains a NUL character")
    if not value.isascii():
        _check_encodable(value, name)
    return value


def _check_encodable(value: str, name: str) -> None:
    """A JSON escape can decode to a lone surrogate, which no UTF-8 table can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(f"{name} contains an unpaired UTF-16 surrogate") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys repeat is ambiguous: which value did the sender mean?"""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise RecordError(f"field '{key[:50]}' appears more than once in the object")
        obj[key] = value
    return obj


def to_record(obj: Any, *, now_ms: int) -> dict[str, Any]:
    """Type one decoded JSON value as a transaction-history record.

    Raises:
        RecordError: naming the first problem found.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"line is JSON {type(obj).__name__}, not an object")
    sk = obj.get("sk")
    if sk is None:
        raise RecordError("sk is missing")
    if not isinstance(sk, str) or not sk.startswith(SK_PREFIXES):
        raise RecordError("sk does not start with a known prefix")
    timestamp = obj.get("timestamp")
    if timestamp is None:
        raise RecordError("timestamp is missing")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise RecordError(
            f"timestamp must be whole epoch milliseconds, got {type(timestamp).__name__}"
        )
    if timestamp < EARLIEST_TIMESTAMP_MS:
        raise RecordError("timestamp is before 2015")
    if timestamp > now_ms + FUTURE_TOLERANCE_MS:
        raise RecordError("timestamp is in the future")

    record: dict[str, Any] = {name: _string(obj.get(name), name) for name in STRING_FIELDS}
    record["timestamp"] = timestamp
    for name in DATE_FIELDS:
        value = obj.get(name)
        if value is None or value == "":
            record[name] = None
        elif not isinstance(value, str):
            raise RecordError(f"{name} must be an ISO 8601 string, got {type(value).__name__}")
        else:
            record[name] = parse_iso_datetime(value, name)
    check_date_range(record, now_ms=now_ms)
    for name in LIST_FIELDS:
        value = obj.get(name)
        if value is None:
            record[name] = None
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            if any("\x00" in v for v in value):
                raise RecordError(f"{name} contains a NUL character")
            for item in value:
                if not item.isascii():
                    _check_encodable(item, name)
            record[name] = value
        else:
            raise RecordError(f"{name} must be a list of text")
    for name in INT_FIELDS:
        value = obj.get(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            record[name] = value
        elif isinstance(value, str) and value.isdigit():
            record[name] = int(value)
        else:
            raise RecordError(f"{name} must be a whole number")
    extra = {k: v for k, v in obj.items() if k not in KNOWN_FIELDS}
    record["_extra"] = json.dumps(extra, sort_keys=True) if extra else None
    record["change_date"] = datetime.fromtimestamp(timestamp / 1000, tz=UTC).date().isoformat()
    return record


def parse_lines(
    lines: Iterable[bytes], *, source_file: str, now: datetime, quarantined_at: datetime
) -> ParsedFile:
    """Parse a landed file's lines; blank lines are skipped, everything else is kept.

    Args:
        lines: the file's raw lines (with or without trailing newlines).
        source_file: the file's key, stored with every row for lineage.
        now: the ingestion time, to reject timestamps from the future.
        quarantined_at: stamped on quarantine rows.
    """
    parsed = ParsedFile(landing_date=landing_date_of(source_file, now))
    parse_numbered_lines(
        enumerate(lines, start=1),
        parsed,
        source_file=source_file,
        now=now,
        quarantined_at=quarantined_at,
    )
    return parsed


def parse_numbered_lines(
    numbered: Iterable[tuple[int, bytes]],
    parsed: ParsedFile,
    *,
    source_file: str,
    now: datetime,
    quarantined_at: datetime,
) -> None:
    """The per-line path: add each (line number, raw line) to ``parsed``, one at a time."""
    now_ms = int(now.timestamp() * 1000)
    for number, raw in numbered:
        line = raw.rstrip(b"\r\n")
        if number == 1:
            line = line.removeprefix(UTF8_BOM)  # a byte-order mark is encoding, not data
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE_BYTES:
                raise RecordError(f"line is longer than {MAX_LINE_BYTES} bytes")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise RecordError("line is not UTF-8") from None
            try:
                obj = json.loads(text, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as exc:
                raise RecordError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            record = to_record(obj, now_ms=now_ms)
        except RecordError as exc:
            parsed.quarantined.append(
                {
                    "_source_file": source_file,
                    "_line_number": number,
                    "reason": str(exc),
                    "raw_line": line[:MAX_QUARANTINED_LINE_CHARS].decode("utf-8", "replace"),
                    "_quarantined_at": quarantined_at,
                }
            )
            continue
        record["_record_hash"] = hashlib.sha256(line).hexdigest()
        record["_source_file"] = source_file
        record["_line_number"] = number
        parsed.records.append(record)


_LANDING_PARTITION = re.compile(r"(?:^|/)__year=(\d{4})/__month=(\d{1,2})/__day=(\d{1,2})/")


def landing_date_of(source_file: str, received: datetime) -> str:
    """The day a file landed: its ``__year=/__month=/__day=`` folder, else the day received.

    The folders are the sender's landing partition (NHS Notify's moving windows run
    over them); a key without them, or with a date that does not exist, landed when
    ingestion found it.
    """
    return _landing_folder_date(source_file) or received.astimezone(UTC).date().isoformat()


def with_landing_dates(history: pa.Table) -> pa.Table:
    """Bronze rows of an earlier layout, given the landing day their file's key names.

    Rows from before ``landing_date`` existed lack it; their key tells the day, and a
    key without landing folders falls back to the record's change date, the nearest
    fact kept about when it arrived.
    """
    if "landing_date" not in history.column_names:
        history = history.append_column("landing_date", pa.nulls(history.num_rows, pa.string()))
    files = pc.unique(history["_source_file"]).to_pylist()
    by_key = {key: _landing_folder_date(key) for key in files if key is not None}
    from_key = pa.array([by_key.get(k) for k in history["_source_file"].to_pylist()], pa.string())
    filled = pc.coalesce(history["landing_date"], from_key, history["change_date"])
    at = history.schema.get_field_index("landing_date")
    return history.set_column(at, "landing_date", filled)


def _landing_folder_date(source_file: str) -> str | None:
    match = _LANDING_PARTITION.search(source_file)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError:
        return None


def window_start(as_of: datetime, days: int) -> date:
    """First day of a window reaching ``days`` days back from ``as_of``'s UTC date.

    NHS Notify's ``DATE_ADD('day', -days, CURRENT_DATE)``: a week's window holds today
    and the seven days before it, eight calendar days.
    """
    return as_of.astimezone(UTC).date() - timedelta(days=days)


def months_before(as_of: datetime, months: int) -> date:
    """The UTC date ``months`` calendar months before ``as_of``'s.

    NHS Notify's ``DATE_ADD('month', -months, CURRENT_DATE)``, whose day is clamped to
    the shorter month: a month before 31 March is 28 (or 29) February.
    """
    today = as_of.astimezone(UTC).date()
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(today.day, last_day))
