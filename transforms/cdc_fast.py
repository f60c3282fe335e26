"""Vectorised parsing of a landed CDC file, falling back to the per-line path.

``parse_landed_file(data, ...)`` gives exactly what
``transforms.cdc.parse_lines(data.splitlines(), ...)`` gives, several times faster:
pyarrow's JSON reader types the file in one pass against a strict schema, and
pyarrow.compute checks every row at once. Whatever that cannot vouch for goes to the
per-line path, which alone decides quarantine reasons:

* a line the reader rejects (not JSON, wrong type, unknown or repeated field, two
  objects on one line): the reader's "in row N" tells which line, else the block is
  halved until the bad lines are isolated; the good neighbours stay on the fast path;
* a row the reader took but the per-line rules might treat differently (sk prefix,
  timestamp bounds, NUL characters, null list items, a date that is not the plain
  ``YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)`` form);
* lines that are over-long, not UTF-8, or do not start with ``{"`` and end with ``}``
  (which also keeps out a byte-order mark, which the reader would skip silently).

Text fields that arrive as JSON integers (``sendinggroupidversion``) are read as
int64 and cast to text, which is what ``str(int)`` gives; the reader learns this
from its own type error and keeps it for the rest of the file.

The reader refuses unknown fields, so a line with one always takes the per-line path
(it alone builds ``_extra``). The reader's refusal names no row, so when it comes the
block is read once more with unknown fields inferred, to learn their names; from then
on a line holding ``"name"`` goes to the per-line path before any read. (Without this,
every such line cost a dozen re-reads of ever smaller halves of its block: the feed's
``templates`` field, on 2% of lines, made ingestion several times slower.)
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from transforms.cdc import (
    DATE_FIELDS,
    EARLIEST_DATE_MS,
    EARLIEST_TIMESTAMP_MS,
    FUTURE_TOLERANCE_MS,
    INT_FIELDS,
    LIST_FIELDS,
    MAX_LINE_BYTES,
    SK_PREFIXES,
    STRING_FIELDS,
    TRANSACTION_HISTORY_SCHEMA,
    ParsedFile,
    landing_date_of,
    parse_numbered_lines,
)

# Lines per read: a rejected line costs a re-read of the rest of its block only.
BLOCK_LINES = 2048
READ_THREADS = 2
# Below this many lines a block the reader rejects goes to the per-line path whole.
MIN_BLOCK_LINES = 8
# The date-times the fast path converts itself; anything else is left to the per-line path.
PLAIN_ISO_DATETIME = (
    r"^[12]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,3})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
NUMBER_TOLERANT = frozenset(STRING_FIELDS) - {"sk"}
_ROW_HINT = re.compile(r"in row (\d+)$")
_TYPE_CHANGE = re.compile(r"Column\(/(\w+)\) changed from (string|number) to (string|number)")


class _Unreadable(Exception):
    """The reader or a conversion refused a block; split it and try again."""


class _UnknownFields(_Unreadable):
    """The reader met fields the schema lacks and has learnt their names: filter, re-read."""


@dataclass
class _Block:
    """What the fast path made of a block: good rows, and lines it leaves to the per-line path."""

    table: pa.Table
    slow: list[int]


def parse_landed_file(
    data: bytes, *, source_file: str, now: datetime, quarantined_at: datetime
) -> ParsedFile:
    """Parse a whole landed file; same result as ``parse_lines(data.splitlines(), ...)``."""
    lines = data.splitlines()
    try:
        data.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    fast: list[int] = []  # 0-based indices into lines
    slow: list[int] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if (
            len(line) > MAX_LINE_BYTES
            # Not an object on its own (cut short, an array, text): the reader would
            # reject it, and finding it by row would cost a re-read of the block.
            or line[:2] != b'{"'
            or line[-1:] != b"}"
            or not _is_utf8(line, utf8)
        ):
            slow.append(index)
        else:
            fast.append(index)
    reader = _Reader(now_ms=int(now.timestamp() * 1000), source_file=source_file)
    parsed = ParsedFile(landing_date=landing_date_of(source_file, now))
    for block in reader.read(lines, fast):
        if block.table.num_rows:
            parsed.record_tables.append(block.table)
        slow.extend(block.slow)
    slow.sort()
    parse_numbered_lines(
        ((index + 1, lines[index]) for index in slow),
        parsed,
        source_file=source_file,
        now=now,
        quarantined_at=quarantined_at,
    )
    return parsed


def _is_utf8(line: bytes, whole_file_is_utf8: bool) -> bool:
    if whole_file_is_utf8:
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Reader:
    """Reads blocks of lines with pyarrow, isolating the lines it cannot take."""

    def __init__(self, *, now_ms: int, source_file: str) -> None:
        self.now_ms = now_ms
        self.source_file = source_file
        self.numeric_text: set[str] = set()  # text fields seen as JSON integers
        self.unknown_markers: tuple[bytes, ...] = ()  # b'"name"' of fields the schema lacks

    def read(self, lines: list[bytes], indices: list[int]) -> list[_Block]:
        """Blocks covering ``indices``; ``ParsedFile.records_table`` puts rows back in line order.

        The first block runs alone so the field types it learns serve the rest, which
        run on a small thread pool (the reader and pyarrow.compute release the GIL).
        """
        chunks = [indices[i : i + BLOCK_LINES] for i in range(0, len(indices), BLOCK_LINES)]
        if not chunks:
            return []
        blocks = self._isolate(lines, chunks[0])
        if len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
                for done in pool.map(lambda chunk: self._isolate(lines, chunk), chunks[1:]):
                    blocks.extend(done)
        return blocks

    def _isolate(self, lines: list[bytes], indices: list[int]) -> list[_Block]:
        """Read a block, splitting off the lines the reader rejects until the rest reads."""
        blocks: list[_Block] = []
        pending = [indices]
        while pending:
            chunk = pending.pop()
            if not chunk:
                continue
            try:
                blocks.append(self._block(lines, chunk))
                continue
            except _Unreadable as exc:
                bad = exc.args[0] if exc.args else None
            if isinstance(bad, int) and 0 <= bad < len(chunk):
                # The reader named the row: keep the rest on the fast path.
                blocks.append(_Block(TRANSACTION_HISTORY_SCHEMA.empty_table(), [chunk[bad]]))
                pending.extend([chunk[bad + 1 :], chunk[:bad]])
            elif len(chunk) <= MIN_BLOCK_LINES:
                blocks.append(_Block(TRANSACTION_HISTORY_SCHEMA.empty_table(), list(chunk)))
            else:
                middle = len(chunk) // 2
                pending.extend([chunk[middle:], chunk[:middle]])
        return blocks

    def _schema(self) -> pa.Schema:
        return pa.schema(
            [
                *[
                    (name, pa.int64() if name in self.numeric_text else pa.string())
                    for name in STRING_FIELDS
                ],
                ("timestamp", pa.int64()),
                *[(name, pa.string()) for name in DATE_FIELDS],
                *[(name, pa.list_(pa.string())) for name in LIST_FIELDS],
                *[(name, pa.int64()) for name in INT_FIELDS],
            ]
        )

    def _parse(self, buffer: bytes) -> pa.Table:
        """Read with the current schema, switching a text field's JSON type when told to.

        Raises:
            _Unreadable: with the failing row's index when the reader names it.
        """
        switched: set[str] = set()
        while True:
            try:
                return pa_json.read_json(
                    io.BytesIO(buffer),
                    read_options=pa_json.ReadOptions(use_threads=False, block_size=len(buffer) + 1),
                    parse_options=pa_json.ParseOptions(
                        explicit_schema=self._schema(), unexpected_field_behavior="error"
                    ),
                )
            except pa.ArrowInvalid as exc:
                message = str(exc)
            change = _TYPE_CHANGE.search(message)
            # sk must be text (a number is a quarantine reason), so it never switches.
            if change and change[1] in NUMBER_TOLERANT and change[1] not in switched:
                name = change[1]
                as_number = name in self.numeric_text
                if (change[2] == "number") == as_number:  # the declared type is the "from"
                    switched.add(name)
                    (self.numeric_text.discard if as_number else self.numeric_text.add)(name)
                    continue
            if message.endswith("unexpected field") and self._learn_unknown(buffer):
                raise _UnknownFields
            hint = _ROW_HINT.search(message)
            raise _Unreadable(int(hint[1]) if hint else None)

    def _learn_unknown(self, buffer: bytes) -> bool:
        """Learn the names of the fields the schema lacks; whether any was new."""
        try:
            table = pa_json.read_json(
                io.BytesIO(buffer),
                read_options=pa_json.ReadOptions(use_threads=False, block_size=len(buffer) + 1),
                parse_options=pa_json.ParseOptions(
                    explicit_schema=self._schema(), unexpected_field_behavior="infer"
                ),
            )
        except pa.ArrowInvalid:
            return False
        known = set(self._schema().names)
        found = {f'"{name}"'.encode() for name in table.column_names if name not in known}
        new = found - set(self.unknown_markers)
        self.unknown_markers = (*self.unknown_markers, *sorted(new))
        return bool(new)

    def _without_unknown(self, lines: list[bytes], chunk: list[int]) -> tuple[list[int], list[int]]:
        """Split off the lines that name a field the schema lacks (for the per-line path)."""
        if not self.unknown_markers:
            return chunk, []
        markers = self.unknown_markers
        keep: list[int] = []
        slow: list[int] = []
        for index in chunk:
            line = lines[index]
            (slow if any(m in line for m in markers) else keep).append(index)
        return keep, slow

    def _block(self, lines: list[bytes], chunk: list[int]) -> _Block:
        chunk, unknown = self._without_unknown(lines, chunk)
        try:
            block = self._typed_block(lines, chunk)
        except _UnknownFields:  # names learnt: those lines go to the per-line path
            chunk, more = self._without_unknown(lines, chunk)
            block = self._typed_block(lines, chunk)
            unknown += more
        block.slow.extend(unknown)
        return block

    def _typed_block(self, lines: list[bytes], chunk: list[int]) -> _Block:
        if not chunk:
            return _Block(TRANSACTION_HISTORY_SCHEMA.empty_table(), [])
        chosen = [lines[i] for i in chunk]
        table = self._parse(b"\n".join(chosen))
        if table.num_rows != len(chunk):  # e.g. two objects on one line
            raise _Unreadable(None)
        if not table.num_rows:
            return _Block(TRANSACTION_HISTORY_SCHEMA.empty_table(), [])
        table = table.combine_chunks()
        columns = {name: table.column(name).chunk(0) for name in table.column_names}
        try:
            dates = {name: _dates(columns[name]) for name in DATE_FIELDS}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise _Unreadable(None) from None  # a plain-looking date that is not a real one
        doubtful = pc.or_(self._doubtful(columns), self._implausible(dates))
        keep = pc.invert(doubtful)
        slow = [chunk[i] for i in pc.indices_nonzero(doubtful).to_pylist()]
        timestamp = columns["timestamp"]
        numbers = pa.array([i + 1 for i in chunk], pa.int64())
        arrays: dict[str, pa.Array] = {
            **{
                name: pc.cast(columns[name], pa.string())
                if columns[name].type != pa.string()
                else columns[name]
                for name in STRING_FIELDS
            },
            "timestamp": timestamp,
            **dates,
            **{name: columns[name] for name in (*LIST_FIELDS, *INT_FIELDS)},
            "_extra": pa.nulls(len(chunk), pa.string()),
            "_record_hash": pa.array([hashlib.sha256(line).hexdigest() for line in chosen]),
            "_source_file": pa.repeat(pa.scalar(self.source_file, pa.string()), len(chunk)),
            "_line_number": numbers,
            "change_date": pc.cast(
                pc.cast(
                    pc.cast(pc.fill_null(timestamp, 0), pa.timestamp("ms", tz="UTC")), pa.date32()
                ),
                pa.string(),
            ),
            "landing_date": pa.nulls(len(chunk), pa.string()),  # ParsedFile stamps it
        }
        built = pa.Table.from_arrays(
            [arrays[f.name] for f in TRANSACTION_HISTORY_SCHEMA], schema=TRANSACTION_HISTORY_SCHEMA
        )
        return _Block(built.filter(keep) if slow else built, slow)

    def _doubtful(self, columns: dict[str, pa.Array]) -> pa.Array:
        """Rows the per-line rules might reject or type differently."""
        sk = columns["sk"]
        known_prefix = functools.reduce(
            pc.or_, [pc.starts_with(sk, prefix) for prefix in SK_PREFIXES]
        )
        timestamp = columns["timestamp"]
        in_range = pc.and_(
            pc.greater_equal(timestamp, EARLIEST_TIMESTAMP_MS),
            pc.less_equal(timestamp, self.now_ms + FUTURE_TOLERANCE_MS),
        )
        doubtful = pc.invert(pc.fill_null(pc.and_(known_prefix, in_range), False))
        for name in STRING_FIELDS:
            if columns[name].type == pa.string():
                doubtful = pc.or_(doubtful, _contains_nul(columns[name]))
        for name in LIST_FIELDS:
            doubtful = pc.or_(doubtful, _bad_list(columns[name]))
        for name in DATE_FIELDS:
            value = columns[name]
            plain = pc.or_(pc.equal(value, ""), pc.match_substring_regex(value, PLAIN_ISO_DATETIME))
            doubtful = pc.or_(doubtful, pc.invert(pc.fill_null(plain, True)))
        return doubtful

    def _implausible(self, dates: dict[str, pa.Array]) -> pa.Array:
        """Rows whose dates break ``check_date_range``: the per-line path names the reason."""
        earliest = pa.scalar(EARLIEST_DATE_MS, pa.int64())
        latest = pa.scalar(self.now_ms + FUTURE_TOLERANCE_MS, pa.int64())
        bad = pa.repeat(pa.scalar(False), len(dates["createddate"]))
        for values in dates.values():
            ms = pc.cast(values, pa.int64())
            outside = pc.or_(pc.less(ms, earliest), pc.greater(ms, latest))
            bad = pc.or_(bad, pc.fill_null(outside, False))
        backwards = pc.less(dates["completeddate"], dates["createddate"])
        return pc.or_(bad, pc.fill_null(backwards, False))


def _contains_nul(values: pa.Array) -> pa.Array:
    return pc.fill_null(pc.match_substring(values, "\x00"), False)


def _bad_list(values: pa.Array) -> pa.Array:
    """Rows whose list holds a null item or a NUL character."""
    items = pc.list_flatten(values)
    bad_items = pc.or_(pc.is_null(items), _contains_nul(items))
    if not pc.any(bad_items).as_py():
        return pa.repeat(pa.scalar(False), len(values))
    parents = pc.filter(pc.list_parent_indices(values), bad_items)
    return pc.is_in(pa.array(range(len(values)), pa.int64()), value_set=parents)


def _dates(values: pa.Array) -> pa.Array:
    """Plain ISO date-times to UTC milliseconds; empty or doubtful text to null."""
    plain = pc.fill_null(pc.match_substring_regex(values, PLAIN_ISO_DATETIME), False)
    usable = pc.if_else(plain, values, pa.scalar(None, pa.string()))
    return pc.cast(usable, pa.timestamp("ms", tz="UTC"))
