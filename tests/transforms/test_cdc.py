"""Parsing landed CDC lines into typed records or quarantine rows."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from flowehr_pipelines.synthetic import write_cdc_landing
from transforms import cdc_fast
from transforms.cdc import (
    EARLIEST_TIMESTAMP_MS,
    MAX_LINE_BYTES,
    MAX_QUARANTINED_LINE_CHARS,
    QUARANTINE_SCHEMA,
    TRANSACTION_HISTORY_SCHEMA,
    ParsedFile,
    landing_date_of,
    months_before,
    parse_lines,
    window_start,
    with_landing_dates,
)
from transforms.cdc_fast import parse_landed_file

SOURCE = "transaction_history/2026/03/29/part-0001.jsonl"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUARANTINED_AT = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
# 2026-03-29T23:30:00Z: already 30 March in London (BST), still 29 March in UTC.
TS = int(datetime(2026, 3, 29, 23, 30, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
_DROP = object()  # a field left out of the line altogether


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pk": "REQUEST_ITEM#item-1",
        "sk": "REQUEST_ITEM#item-1",
        "timestamp": TS,
        "requestitemid": "item-1",
        "clientid": "client-1",
        "status": "SENDING",
        "createddate": "2026-03-29T22:00:00.000Z",
        "completedcommunicationtypes": ["SMS"],
        "ordernumber": 3,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8") + b"\n"


def parse(*lines: bytes) -> ParsedFile:
    return parse_lines(lines, source_file=SOURCE, now=NOW, quarantined_at=QUARANTINED_AT)


def only_reason(parsed: ParsedFile) -> str:
    assert parsed.records == []
    assert len(parsed.quarantined) == 1
    row = parsed.quarantined[0]
    assert row["_source_file"] == SOURCE
    assert row["_quarantined_at"] == QUARANTINED_AT
    reason: str = row["reason"]
    return reason


MALFORMED: dict[str, tuple[bytes, str]] = {
    "not_json": (b"this is not json\n", "not valid JSON"),
    "truncated": (line(record())[:40], "not valid JSON"),
    "json_array": (line([record()]), "line is JSON list, not an object"),
    "json_number": (b"42\n", "line is JSON int, not an object"),
    "json_string": (b'"REQUEST_ITEM#x"\n', "line is JSON str, not an object"),
    "missing_sk": (line(record(sk=_DROP)), "sk is missing"),
    "null_sk": (line(record(sk=None)), "sk is missing"),
    "unknown_sk_prefix": (line(record(sk="PATIENT#1")), "sk does not start with a known prefix"),
    "sk_not_text": (line(record(sk=7)), "sk does not start with a known prefix"),
    "missing_timestamp": (line(record(timestamp=_DROP)), "timestamp is missing"),
    "timestamp_as_string": (line(record(timestamp=str(TS))), "epoch milliseconds, got str"),
    "timestamp_as_float": (line(record(timestamp=TS + 0.5)), "epoch milliseconds, got float"),
    "timestamp_as_bool": (line(record(timestamp=True)), "epoch milliseconds, got bool"),
    "timestamp_before_2015": (line(record(timestamp=1_000)), "timestamp is before 2015"),
    "future_timestamp": (
        line(record(timestamp=int(NOW.timestamp() * 1000) + 2 * DAY_MS)),
        "timestamp is in the future",
    ),
    "non_iso_createddate": (
        line(record(createddate="29/03/2026 22:00")),
        "createddate is not an ISO 8601 date-time",
    ),
    "createddate_as_number": (line(record(createddate=TS)), "createddate must be an ISO 8601"),
    "list_with_non_strings": (
        line(record(completedcommunicationtypes=["SMS", 3])),
        "completedcommunicationtypes must be a list of text",
    ),
    "list_not_a_list": (
        line(record(failedcommunicationtypes="SMS")),
        "failedcommunicationtypes must be a list of text",
    ),
    "nul_in_string": (line(record(status="SENT\u0000")), "status contains a NUL character"),
    "nul_in_list": (
        line(record(completedcommunicationtypes=["SMS\u0000"])),
        "completedcommunicationtypes contains a NUL character",
    ),
    "object_as_string": (line(record(clientid={"id": 1})), "clientid must be text, got dict"),
    "bad_ordernumber": (line(record(ordernumber="three")), "ordernumber must be a whole number"),
    "non_utf8": (b'{"sk": "REQUEST_ITEM#\xff\xfe", "timestamp": 1}\n', "line is not UTF-8"),
    "over_long": (
        b'{"sk": "' + b"x" * MAX_LINE_BYTES + b'"}\n',
        f"line is longer than {MAX_LINE_BYTES} bytes",
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_parse_lines_quarantines_malformed_line_with_reason(kind):
    raw, reason = MALFORMED[kind]
    parsed = parse(raw)
    assert reason in only_reason(parsed)
    assert parsed.quarantined[0]["_line_number"] == 1


def test_parse_lines_quarantine_keeps_line_numbers_and_good_neighbours():
    lines = [line(record(requestitemid=f"item-{i}")) for i in range(5)]
    lines[1] = b"{not json\n"
    lines[3] = line(record(sk="UNKNOWN#3"))
    parsed = parse(*lines)
    assert [r["_line_number"] for r in parsed.records] == [1, 3, 5]
    assert [(q["_line_number"], q["reason"][:10]) for q in parsed.quarantined] == [
        (2, "not valid "),
        (4, "sk does no"),
    ]


def test_parse_lines_not_json_reason_says_where():
    reason = only_reason(parse(b'{"sk": "REQUEST_ITEM#1",, }\n'))
    assert "at column" in reason


def test_parse_lines_skips_blank_lines_without_quarantine():
    parsed = parse(b"\n", line(record()), b"   \r\n", b"", b"\t\n", line(record(status="DONE")))
    assert parsed.quarantined == []
    assert [r["_line_number"] for r in parsed.records] == [2, 6]


def test_parse_lines_truncates_quarantined_raw_line():
    raw, _ = MALFORMED["over_long"]
    parsed = parse(raw)
    assert len(parsed.quarantined[0]["raw_line"]) == MAX_QUARANTINED_LINE_CHARS


def test_parse_lines_quarantined_raw_line_has_no_newline_and_survives_bad_bytes():
    parsed = parse(b"not json\r\n", MALFORMED["non_utf8"][0])
    assert parsed.quarantined[0]["raw_line"] == "not json"
    assert "\ufffd" in parsed.quarantined[1]["raw_line"]


def test_parse_lines_keeps_unknown_fields_in_extra():
    parsed = parse(line(record(newfield={"b": 2, "a": [1]}, zeta="z")))
    (rec,) = parsed.records
    assert json.loads(rec["_extra"]) == {"newfield": {"a": [1], "b": 2}, "zeta": "z"}
    assert rec["_extra"] == json.dumps(json.loads(rec["_extra"]), sort_keys=True)


def test_parse_lines_extra_is_null_without_unknown_fields():
    (rec,) = parse(line(record())).records
    assert rec["_extra"] is None


def test_parse_lines_record_hash_identical_for_identical_lines():
    raw = line(record())
    parsed = parse(raw, raw, raw.rstrip(b"\n") + b"\r\n", line(record(status="DELIVERED")))
    hashes = [r["_record_hash"] for r in parsed.records]
    assert hashes[0] == hashes[1] == hashes[2] == hashlib.sha256(raw.rstrip(b"\n")).hexdigest()
    assert hashes[3] != hashes[0]


def test_parse_lines_change_date_is_utc_date_of_timestamp():
    (rec,) = parse(line(record())).records
    assert rec["change_date"] == "2026-03-29"


def test_parse_lines_types_fields():
    raw = line(
        record(
            createddate="2026-03-30T00:15:00+01:00",
            completeddate="",
            ordernumber="12",
            campaignid=17,
            failedcommunicationtypes=None,
        )
    )
    (rec,) = parse(raw).records
    assert rec["createddate"] == datetime(2026, 3, 29, 23, 15, tzinfo=UTC)
    assert rec["completeddate"] is None
    assert rec["ordernumber"] == 12
    assert rec["campaignid"] == "17"
    assert rec["completedcommunicationtypes"] == ["SMS"]
    assert rec["failedcommunicationtypes"] is None
    assert rec["timestamp"] == TS
    assert (rec["_source_file"], rec["_line_number"]) == (SOURCE, 1)


def test_parse_lines_accepts_timestamp_within_future_tolerance():
    soon = int(NOW.timestamp() * 1000) + DAY_MS // 2
    assert len(parse(line(record(timestamp=soon))).records) == 1


def test_parsed_file_tables_follow_schemas():
    parsed = parse(line(record(extra_field=1)), b"nope\n", line(record(sk="CLIENT#c1")))
    records = parsed.records_table()
    quarantine = parsed.quarantine_table()
    assert records.schema == TRANSACTION_HISTORY_SCHEMA
    assert quarantine.schema == QUARANTINE_SCHEMA
    assert records.num_rows == 2
    assert quarantine.num_rows == 1
    assert records["createddate"].type == pa.timestamp("ms", tz="UTC")


def test_parsed_file_empty_tables_keep_schemas():
    parsed = parse()
    assert parsed.records_table().schema == TRANSACTION_HISTORY_SCHEMA
    assert parsed.quarantine_table().num_rows == 0


def test_window_start_counts_days_back_from_the_as_of_day_in_utc():
    # 00:30 BST on 30 March is 23:30 UTC on the 29th: the UTC day counts.
    as_of = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)
    assert window_start(as_of, 1) == date(2026, 3, 28)
    # NHS Notify's week: today and the seven days before it.
    assert window_start(as_of, 7) == date(2026, 3, 22)


@pytest.mark.parametrize(
    ("today", "months", "expected"),
    [
        (date(2026, 4, 6), 1, date(2026, 3, 6)),
        (date(2026, 3, 31), 1, date(2026, 2, 28)),  # clamped to the shorter month
        (date(2028, 3, 31), 1, date(2028, 2, 29)),
        (date(2026, 1, 15), 1, date(2025, 12, 15)),
        (date(2026, 5, 31), 3, date(2026, 2, 28)),
        (date(2026, 12, 3), 12, date(2025, 12, 3)),
    ],
)
def test_months_before_is_trinos_calendar_month_arithmetic(today, months, expected):
    as_of = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=12)
    assert months_before(as_of, months) == expected


# -- the vectorised path gives exactly what the per-line path gives ------------------

# Lines the per-line rules accept or reject in ways the fast path must not second-guess.
EDGE_LINES: dict[str, bytes] = {
    "byte_order_mark": b"\xef\xbb\xbf" + line(record()),
    "two_objects_on_one_line": line(record()).rstrip(b"\n") + b" " + line(record()),
    "json_null": b"null\n",
    "empty_object": b"{}\n",
    "duplicate_key_last_wins": line(record()).replace(b'{"pk"', b'{"status": "FIRST", "pk"'),
    "escaped_key": b'{"s\\u006b": "CLIENT#c", "timestamp": %d}\n' % TS,
    "unknown_null_field": line(record(newfield=None)),
    "unknown_nested_field": line(record(zeta={"b": [1, 2.5]}, alpha=True)),
    "int_in_text_field": line(record(sendinggroupidversion=4)),
    "negative_zero_in_text_field": line(record(sendinggroupidversion=0)).replace(b": 0", b": -0"),
    "float_in_text_field": line(record(sendinggroupidversion=1.50)),
    "huge_int_in_text_field": line(record(campaignid=2**70)),
    "bool_in_text_field": line(record(campaignid=False)),
    "lone_surrogate": b'{"sk": "CLIENT#\\ud800x", "timestamp": %d}\n' % TS,
    "raw_tab_in_string": line(record(status="A")).replace(b'"A"', b'"A\tB"'),
    "escaped_nul": line(record(clientname="a\u0000b")),
    "unicode_text": line(record(clientname="Caf\u00e9 \u2603 \U0001f600")),
    "leading_whitespace": b"  " + line(record()),
    "form_feed_after": line(record()).rstrip(b"\n") + b"\x0c\n",
    "timestamp_exponent": line(record(timestamp=1)).replace(b": 1,", b": %de0," % TS),
    "timestamp_huge": line(record(timestamp=2**70)),
    "timestamp_null": line(record(timestamp=None)),
    "ordernumber_digits": line(record(ordernumber="0042")),
    "ordernumber_float": line(record(ordernumber=3.0)),
    "ordernumber_null": line(record(ordernumber=None)),
    "date_empty": line(record(completeddate="")),
    "date_offset": line(record(createddate="2026-03-30T00:15:00.4+01:00")),
    "date_one_fraction_digit": line(record(createddate="2026-03-29T22:00:00.5Z")),
    "date_microseconds": line(record(createddate="2026-03-29T22:00:00.123999Z")),
    "date_naive": line(record(createddate="2026-03-29T22:00:00")),
    "date_only": line(record(createddate="2026-03-29")),
    "date_space_separator": line(record(createddate="2026-03-29 22:00:00Z")),
    "date_february_30": line(record(createddate="2026-02-30T10:00:00Z")),
    "date_leap_second": line(record(createddate="2026-03-29T23:59:60Z")),
    "date_with_trailing_z_and_text": line(record(createddate="2026-03-29T22:00:00Zjunk")),
    "list_with_null_item": line(record(completedcommunicationtypes=["SMS", None])),
    "list_empty": line(record(failedcommunicationtypes=[])),
    "list_of_lists": line(record(failedcommunicationtypes=[["SMS"]])),
    "timestamp_at_future_edge": line(record(timestamp=int(NOW.timestamp() * 1000) + DAY_MS)),
    "timestamp_at_2015": line(record(timestamp=EARLIEST_TIMESTAMP_MS)),
    "sk_client": line(record(sk="CLIENT#c1", pk="CLIENT#c1")),
    "sk_plan": line(record(sk="REQUEST_ITEM_PLAN#p1")),
    "sk_prefix_lower_case": line(record(sk="request_item#1")),
}  # fmt: skip


def parse_fast(data: bytes) -> ParsedFile:
    return parse_landed_file(data, source_file=SOURCE, now=NOW, quarantined_at=QUARANTINED_AT)


def assert_same_as_per_line(data: bytes) -> ParsedFile:
    """Both paths over one file: identical record tables and quarantine rows."""
    expected = parse_lines(
        data.splitlines(), source_file=SOURCE, now=NOW, quarantined_at=QUARANTINED_AT
    )
    fast = parse_fast(data)
    expected_table, fast_table = expected.records_table(), fast.records_table()
    assert fast_table.schema == expected_table.schema
    assert fast_table.to_pylist() == expected_table.to_pylist()
    assert fast.quarantined == expected.quarantined
    assert fast.record_count == len(expected.records)
    return fast


def mixed_file(good_every: int = 1) -> bytes:
    """Good lines (with int-valued text fields, as landed) around every kind of bad line."""
    rows: list[bytes] = []
    bad = [raw for raw, _ in MALFORMED.values()] + list(EDGE_LINES.values())
    for i, raw in enumerate(bad):
        for j in range(good_every):
            rows.append(
                line(record(requestitemid=f"item-{i}-{j}", sendinggroupidversion=j, ordernumber=j))
            )
        rows.append(raw if raw.endswith(b"\n") else raw + b"\n")
        if i % 7 == 0:
            rows.append(b"\n" if i % 2 else b"  \r\n")
    return b"".join(rows)


@pytest.mark.parametrize("block_lines", [2048, 16, 3])
def test_fast_path_matches_per_line_path_on_every_kind_of_bad_line(monkeypatch, block_lines):
    monkeypatch.setattr(cdc_fast, "BLOCK_LINES", block_lines)
    fast = assert_same_as_per_line(mixed_file(good_every=5))
    assert fast.record_tables, "the good lines should have taken the fast path"
    assert fast.quarantined, "the bad lines should have been quarantined"


@pytest.mark.parametrize("kind", sorted(EDGE_LINES))
def test_fast_path_matches_per_line_path_on_edge_line(kind):
    good = line(record(sendinggroupidversion="v1"))
    assert_same_as_per_line(good + EDGE_LINES[kind] + good)
    assert_same_as_per_line(EDGE_LINES[kind] + good)  # first in its block


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_fast_path_quarantines_malformed_line_with_per_line_reason(kind):
    raw, reason = MALFORMED[kind]
    fast = assert_same_as_per_line(line(record()) + raw)
    assert [q["_line_number"] for q in fast.quarantined] == [2]
    assert reason in fast.quarantined[0]["reason"]


def test_fast_path_keeps_a_text_field_that_switches_between_number_and_text():
    lines = [line(record(sendinggroupidversion=i if i % 3 else f"v{i}")) for i in range(40)]
    assert_same_as_per_line(b"".join(lines))


def test_fast_path_handles_non_utf8_file_and_trailing_line_without_newline():
    data = line(record()) + MALFORMED["non_utf8"][0] + line(record(status="DONE")).rstrip(b"\n")
    assert_same_as_per_line(data)
    assert_same_as_per_line(data.replace(b"\n", b"\r\n"))
    assert_same_as_per_line(data.replace(b"\n", b"\r"))


def test_fast_path_empty_and_blank_files():
    for data in (b"", b"\n\n", b" \r\n\t\n"):
        fast = assert_same_as_per_line(data)
        assert fast.records_table().num_rows == 0
        assert fast.records_table().schema == TRANSACTION_HISTORY_SCHEMA


@pytest.mark.parametrize("seed", [3, 11])
def test_fast_path_matches_per_line_path_on_generated_landing_files(tmp_path, monkeypatch, seed):
    """Property-style: whatever the generator lands, both paths agree line for line."""
    monkeypatch.setattr(cdc_fast, "BLOCK_LINES", 64)
    stats = write_cdc_landing(
        tmp_path,
        days=2,
        events_per_day=400,
        start_date=date(2026, 5, 1),
        seed=seed,
        lines_per_file=300,
        malformed_rate=0.05,
    )
    assert sum(stats.malformed.values()) > 0
    files = sorted(tmp_path.rglob("*.jsonl"))
    assert files
    for path in files:
        fast = assert_same_as_per_line(path.read_bytes())
        assert fast.record_tables


@pytest.mark.parametrize(
    ("key", "landed"),
    [
        (
            "landing/transaction_history/__year=2026/__month=04/__day=01/part-00001.jsonl",
            "2026-04-01",
        ),
        ("__year=2026/__month=4/__day=9/a.jsonl", "2026-04-09"),
        # No landing folders, or a day that does not exist: the day it was received.
        ("landing/transaction_history/loose.jsonl", "2026-05-02"),
        ("landing/transaction_history/__year=2026/__month=02/__day=30/a.jsonl", "2026-05-02"),
    ],
)
def test_landing_date_is_the_key_folder_day_else_the_day_received(key: str, landed: str):
    received = datetime(2026, 5, 2, 23, 30, tzinfo=UTC)
    assert landing_date_of(key, received) == landed
    parsed = parse_lines([line(record())], source_file=key, now=received, quarantined_at=received)
    assert parsed.records_table()["landing_date"].to_pylist() == [landed]


def test_rows_of_the_earlier_layout_get_their_landing_day_from_the_key_or_change_date():
    rows = pa.table(
        {
            "_source_file": ["x/__year=2026/__month=01/__day=05/a.jsonl", "loose.jsonl"],
            "change_date": ["2026-01-04", "2026-01-03"],
        }
    )
    assert with_landing_dates(rows)["landing_date"].to_pylist() == ["2026-01-05", "2026-01-03"]


def test_fast_path_learns_unknown_fields_once_instead_of_halving_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A field the schema lacks on every 50th line: learnt once, its lines go per-line."""
    templates = {"templates": {"suppliers": {"mba": "t1"}}}
    rows = [
        line(record(requestitemid=f"i{i}", **(templates if i % 50 == 0 else {})))
        for i in range(5_000)
    ]
    rows[777] = line(record(requestitemid="late", zeta=None))  # a second unknown, later on
    reads = 0
    read_json = cdc_fast.pa_json.read_json

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return read_json(*args, **kwargs)

    monkeypatch.setattr(cdc_fast.pa_json, "read_json", counting)
    parsed = assert_same_as_per_line(b"\n".join(rows) + b"\n")
    assert parsed.record_count == 5_000
    blocks = -(-5_000 // cdc_fast.BLOCK_LINES)
    assert reads <= 3 * blocks, f"{reads} reads for {blocks} blocks: no halving cascade"
