"""Landing files to bronze/transaction_history: exactly once per file, bad lines quarantined."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.reporting.ingestion import (
    QUARANTINE,
    TRANSACTION_HISTORY,
    landing_marker,
    pending_landing_keys,
    quarantine_check,
    transaction_history,
)
from resources import progress
from resources.delta.store import DeltaTableStore, Marked
from tests.assets.reporting_world import NOW, Lake, client, item, lines, plan
from transforms.cdc import ParsedFile
from transforms.cdc_fast import parse_landed_file


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.at(tmp_path / "lake")


def history(lake: Lake) -> pa.Table:
    return lake.delta.read(TRANSACTION_HISTORY.path)


def some_records(n: int, prefix: str = "i") -> list[str]:
    return lines([item(f"{prefix}{i}", NOW - timedelta(hours=i), "SENDING") for i in range(n)])


def test_ingest_is_exactly_once_per_file_across_reruns(lake: Lake):
    lake.land("part-1", some_records(3, "a"))
    lake.land("part-2", some_records(2, "b"))
    first = lake.ingest()
    assert (first.files_seen, first.files_ingested, first.records) == (2, 2, 5)
    second = lake.ingest()
    assert (second.files_ingested, second.files_already_ingested, second.records) == (0, 2, 0)
    lake.land("part-3", some_records(1, "c"))
    third = lake.ingest()
    assert (third.files_ingested, third.files_already_ingested) == (1, 2)
    assert history(lake).num_rows == 6


def test_ingest_records_a_byte_identical_redelivery_without_its_rows(lake: Lake):
    body = some_records(4)
    lake.land("part-1", body)
    lake.ingest()
    lake.land("part-1-resent", body, day="2026/04/02")
    stats = lake.ingest()
    assert (stats.duplicate_deliveries, stats.files_ingested, stats.records) == (1, 0, 0)
    assert history(lake).num_rows == 4
    dt = lake.delta.table(TRANSACTION_HISTORY.path)
    resent = "landing/transaction_history/__year=2026/__month=04/__day=02/part-1-resent.jsonl"
    assert dt.transaction_version(landing_marker(resent)) is not None
    assert lake.ingest().files_already_ingested == 2


def test_ingest_duplicate_records_in_different_files_are_kept_for_the_projection(lake: Lake):
    record = lines([item("i1", NOW, "SENDING")])
    lake.land("part-1", record + some_records(1, "x"))
    lake.land("part-2", record)
    lake.ingest()
    data = history(lake)
    assert pc.sum(pc.equal(data["requestitemid"], "i1")).as_py() == 2


MALFORMED = {
    "not json": "{this is not json",
    "truncated": json.dumps(item("t1", NOW, "SENDING"))[:40],
    "not an object": json.dumps(["REQUEST_ITEM#x", 1]),
    "missing sk": json.dumps({k: v for k, v in item("m1", NOW, "SENDING").items() if k != "sk"}),
    "missing timestamp": json.dumps(
        {k: v for k, v in item("m2", NOW, "SENDING").items() if k != "timestamp"}
    ),
    "wrong type": json.dumps({**item("m3", NOW, "SENDING"), "timestamp": "yesterday"}),
    "non-ISO date": json.dumps({**item("m4", NOW, "SENDING"), "createddate": "06/04/2026 10:00"}),
}


def test_ingest_quarantines_malformed_lines_with_file_line_and_reason(lake: Lake):
    good = lines([item("ok1", NOW, "SENDING"), plan("p1", NOW, "PENDING"), client("c", NOW, "T")])
    body = [good[0], *MALFORMED.values(), good[1], good[2]]
    key = lake.land("part-1", body)
    stats = lake.ingest()
    assert (stats.records, stats.quarantined) == (3, len(MALFORMED))
    assert sum(stats.quarantine_reasons.values()) == len(MALFORMED)
    quarantined = lake.delta.read(QUARANTINE).to_pylist()
    assert {q["_source_file"] for q in quarantined} == {key}
    assert sorted(q["_line_number"] for q in quarantined) == list(range(2, 2 + len(MALFORMED)))
    assert all(q["reason"] for q in quarantined)
    reasons = " | ".join(q["reason"] for q in quarantined)
    for fragment in ("not valid JSON", "not an object", "sk is missing", "timestamp is missing",
                     "epoch milliseconds", "ISO 8601"):  # fmt: skip
        assert fragment in reasons
    # Re-running adds neither records nor quarantine rows.
    lake.ingest()
    assert lake.delta.read(QUARANTINE).num_rows == len(MALFORMED)
    assert history(lake).num_rows == 3


def test_quarantine_share_check_warns_above_one_percent(lake: Lake):
    lake.land("part-1", [*some_records(10), "junk"])
    check = quarantine_check(lake.ingest())
    assert not check.passed and check.severity.value == "WARN"
    lake.land("part-2", [*some_records(200, "z"), "junk"])
    assert quarantine_check(lake.ingest()).passed


def test_bronze_keeps_each_records_change_date_beside_its_landing_day(lake: Lake):
    lake.land(
        "part-1",
        lines([item("i1", NOW, "SENDING"), item("i2", NOW - timedelta(days=2), "SENDING")]),
        day="2026/04/06",
    )
    lake.ingest()
    dt = lake.delta.table(TRANSACTION_HISTORY.path)
    assert {p["landing_date"] for p in dt.partitions()} == {"2026-04-06"}
    assert sorted(history(lake)["change_date"].to_pylist()) == ["2026-04-04", "2026-04-06"]


def test_pending_landing_keys_lists_only_files_not_yet_ingested(lake: Lake):
    first = lake.land("part-1", some_records(1))
    assert pending_landing_keys(lake.objects, lake.delta) == [first]
    lake.ingest()
    assert pending_landing_keys(lake.objects, lake.delta) == []
    second = lake.land("part-2", some_records(1, "n"))
    lake.objects.write_bytes("landing/transaction_history/notes.txt", b"not a CDC file")
    assert pending_landing_keys(lake.objects, lake.delta) == [second]


def test_append_once_rejects_a_commit_made_on_a_snapshot_that_missed_the_marker(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
):
    """Two ingestions both saw a file as new: the later commit fails and is skipped."""
    parsed = ParsedFile(
        records=[
            {**item("i1", NOW, "SENDING"), "_record_hash": "h", "_source_file": "f",
             "_line_number": 1, "change_date": "2026-04-06", "createddate": None,
             "completeddate": None, "_extra": None}
        ]
    )  # fmt: skip
    rows = parsed.records_table()
    table = TRANSACTION_HISTORY.path
    lake.delta.append(table, rows.slice(0, 0), partition_by=["change_date"])
    stale = lake.delta.table(table)  # what the slower writer read before the other committed
    assert lake.delta.append(table, [Marked(["landing:f"], rows)], once=True).applied == (
        "landing:f",
    )

    snapshots = [stale]
    fresh_table = DeltaTableStore.table

    def slow_reader(self: DeltaTableStore, path: Sequence[str], **kwargs: Any) -> Any:
        return snapshots.pop() if snapshots else fresh_table(self, path, **kwargs)

    monkeypatch.setattr(DeltaTableStore, "table", slow_reader)
    assert lake.delta.append(table, [Marked(["landing:f"], rows)], once=True).applied == ()
    assert not snapshots  # the stale snapshot was used, and its commit rejected
    monkeypatch.undo()
    assert history(lake).num_rows == 1


def test_bronze_is_partitioned_by_the_day_each_file_landed(lake: Lake):
    lake.land("dated", some_records(2), day="2026/04/03")
    lake.objects.write_bytes(
        "landing/transaction_history/undated.jsonl",
        ("\n".join(some_records(1, "u")) + "\n").encode(),
    )
    lake.ingest()
    dt = lake.delta.table(TRANSACTION_HISTORY.path)
    assert list(dt.metadata().partition_columns) == ["landing_date"]
    by_file = {
        (row["_source_file"].rsplit("/", 1)[-1], row["landing_date"])
        for row in history(lake).to_pylist()
    }
    # A key without landing folders landed when ingestion found it (the clock's UTC day).
    assert by_file == {("dated.jsonl", "2026-04-03"), ("undated.jsonl", NOW.date().isoformat())}


def test_bronze_of_the_change_date_layout_is_laid_out_by_landing_day_once(lake: Lake):
    # An earlier version wrote bronze by change date, without landing_date.
    key = lake.land("old", some_records(3), day="2026/04/02")
    parsed = parse_landed_file(
        lake.objects.read_bytes(key), source_file=key, now=NOW, quarantined_at=NOW
    )
    earlier = parsed.records_table().drop_columns(["landing_date"])
    lake.delta.append(
        TRANSACTION_HISTORY.path,
        [Marked([landing_marker(key)], earlier)],
        once=True,
        partition_by=["change_date"],
    )
    lake.land("new", some_records(2, "n"), day="2026/04/05")
    lake.ingest()
    dt = lake.delta.table(TRANSACTION_HISTORY.path)
    assert list(dt.metadata().partition_columns) == ["landing_date"]
    days = sorted(history(lake)["landing_date"].to_pylist())
    assert days == ["2026-04-02"] * 3 + ["2026-04-05"] * 2
    assert pending_landing_keys(lake.objects, lake.delta) == []  # markers carried over


# -- gzip-compressed landing files ------------------------------------------------------


def land_gzip(lake: Lake, name: str, body: bytes, day: str = "2026/04/01") -> str:
    """Write one ``.jsonl.gz`` landing file holding ``body`` compressed (or as given)."""
    year, month, dom = day.split("/")
    key = f"landing/transaction_history/__year={year}/__month={month}/__day={dom}/{name}.jsonl.gz"
    lake.objects.write_bytes(key, body)
    return key


def text_of(records: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in records).encode()


def test_a_gzip_file_is_ingested_as_its_plain_lines_would_be(lake: Lake):
    body = [*some_records(3), MALFORMED["not json"], *some_records(2, "z")]
    key = land_gzip(lake, "part-1", gzip.compress(text_of(body)))
    assert pending_landing_keys(lake.objects, lake.delta) == [key]
    stats = lake.ingest()
    assert (stats.files_ingested, stats.records, stats.quarantined) == (1, 5, 1)
    rows = history(lake)
    assert set(rows["_source_file"].to_pylist()) == {key}
    assert rows["_line_number"].to_pylist() == [1, 2, 3, 5, 6]
    [bad] = lake.delta.read(QUARANTINE).to_pylist()
    assert (bad["_source_file"], bad["_line_number"]) == (key, 4)
    assert {p["landing_date"] for p in lake.delta.table(TRANSACTION_HISTORY.path).partitions()} == {
        "2026-04-01"
    }
    assert lake.ingest().files_already_ingested == 1
    assert pending_landing_keys(lake.objects, lake.delta) == []


@pytest.mark.parametrize("first", ["plain", "gzip"])
def test_the_same_lines_landed_plain_and_gzip_are_one_delivery(lake: Lake, first: str):
    body = some_records(4)
    if first == "plain":
        lake.land("part-1", body)
        lake.ingest()
        land_gzip(lake, "part-1", gzip.compress(text_of(body), mtime=0))
    else:
        land_gzip(lake, "part-1", gzip.compress(text_of(body), mtime=0))
        lake.ingest()
        lake.land("part-1", body)
    stats = lake.ingest()
    assert (stats.duplicate_deliveries, stats.files_ingested, stats.records) == (1, 0, 0)
    assert history(lake).num_rows == 4
    assert pending_landing_keys(lake.objects, lake.delta) == []


def test_a_truncated_gzip_file_is_quarantined_whole_once_and_ingested_when_resent(lake: Lake):
    packed = gzip.compress(text_of(some_records(50)))
    key = land_gzip(lake, "part-1", packed[: len(packed) // 2])
    lake.land("part-2", some_records(2, "ok"))
    stats = lake.ingest()
    assert (stats.files_ingested, stats.files_unreadable, stats.records) == (1, 1, 2)
    reason = "gzip file is truncated (the compressed stream ends early)"
    assert stats.quarantine_reasons == {reason: 1}
    [row] = lake.delta.read(QUARANTINE).to_pylist()
    assert (row["_source_file"], row["_line_number"], row["reason"]) == (key, 0, reason)
    assert pending_landing_keys(lake.objects, lake.delta) == [key], "not marked: retried"
    assert lake.ingest().files_unreadable == 1
    assert lake.delta.read(QUARANTINE).num_rows == 1, "recorded once, not once per run"
    lake.objects.write_bytes(key, packed)  # the sender delivers the whole file again
    resent = lake.ingest()
    assert (resent.files_ingested, resent.records) == (1, 50)
    assert history(lake).num_rows == 52
    assert pending_landing_keys(lake.objects, lake.delta) == []


def test_ingestion_logs_files_done_of_total_as_dagster_log_events(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(progress, "DEFAULT_INTERVAL_SECONDS", 0.0)  # a line per file
    for n in range(3):
        lake.land(f"part-{n}", some_records(2, f"p{n}"))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [transaction_history],
        resources={"objects": lake.objects, "delta": lake.delta},
        instance=instance,
    )
    assert result.success
    messages = [
        e.user_message for e in instance.all_logs(result.run_id) if e.is_dagster_event is False
    ]
    lines = [m for m in messages if m.startswith("progress bronze/transaction_history: ")]
    assert any("of 3 files done" in line for line in lines)
    assert any("3 of 3 files done (100%)" in line and "6 lines" in line for line in lines)
