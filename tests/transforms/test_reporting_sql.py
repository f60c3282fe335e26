"""Reporting SQL on DuckDB, its parameters, its Spark translation, and London dates."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from transforms.cdc import TRANSACTION_HISTORY_SCHEMA
from transforms.reporting import SQL_DIR, load_sql, render, run_query, run_sql, transpile
from transforms.reporting.calendar import local_dates, local_today, local_yesterday
from transforms.reporting.staging import (
    REQUEST_ITEM_STATUS_SUMMARY,
    REQUEST_ITEM_STATUS_SUMMARY_BATCH,
)

SQL_NAMES = sorted(path.stem for path in SQL_DIR.glob("*.sql"))
T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)


def th_row(item: str | None, offset_ms: int, status: str, hash_: str, **extra: Any) -> dict:
    return {
        "sk": f"REQUEST_ITEM#{item}",
        "requestitemid": item,
        "clientid": "client-1",
        "timestamp": T0 + offset_ms,
        "status": status,
        "_record_hash": hash_,
        **extra,
    }


def history(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRANSACTION_HISTORY_SCHEMA)


def latest(rows: list[dict]) -> dict[str, dict]:
    result = run_sql("request_item_status", {"transaction_history": history(rows)}, {})
    return {row["requestitemid"]: row for row in result.to_pylist()}


# Items a..e each exercise one ordering rule; the record that must win has hash "win...".
ORDERING_ROWS = [
    # a: the newest record wins whatever its status or hash.
    th_row("a", 0, "DELIVERED", "ffff"),
    th_row("a", 5_000, "SENDING", "win-a"),
    th_row("a", 1_000, "FAILED", "eeee"),
    # b: a tie on timestamp goes to the terminal status, even with a lower hash.
    th_row("b", 1_000, "SENDING", "zzzz"),
    th_row("b", 1_000, "DELIVERED", "win-b"),
    th_row("b", 1_000, "ENRICHED", "yyyy"),
    # c: tie on timestamp, both terminal: the higher hash wins.
    th_row("c", 2_000, "DELIVERED", "aaaa"),
    th_row("c", 2_000, "FAILED", "win-c"),
    # d: tie on timestamp, neither terminal: the higher hash wins.
    th_row("d", 2_000, "SENDING", "win-d"),
    th_row("d", 2_000, "ENRICHED", "bbbb"),
    # e: one record only.
    th_row("e", 3_000, "PENDING_ENRICHMENT", "win-e"),
]


def test_request_item_status_keeps_latest_record_per_item():
    result = latest(ORDERING_ROWS)
    assert sorted(result) == ["a", "b", "c", "d", "e"]
    assert {item: row["status"] for item, row in result.items()} == {
        "a": "SENDING",
        "b": "DELIVERED",
        "c": "FAILED",
        "d": "SENDING",
        "e": "PENDING_ENRICHMENT",
    }
    assert all(row["_rank"].endswith(f"win-{item}") for item, row in result.items())


def test_request_item_status_rank_prefixes_terminal_flag():
    result = latest(ORDERING_ROWS)
    assert result["b"]["_rank"] == "1win-b"
    assert result["d"]["_rank"] == "0win-d"
    assert result["b"]["_rank"] > "0zzzz"  # a terminal tie-winner also wins the MERGE


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_request_item_status_independent_of_row_order(seed):
    shuffled = list(ORDERING_ROWS)
    random.Random(seed).shuffle(shuffled)
    assert latest(shuffled) == latest(ORDERING_ROWS)


def test_request_item_status_ignores_other_records():
    rows = [
        th_row("a", 0, "SENDING", "h1"),
        # Plans and clients share the feed; they are not request items.
        {**th_row("a", 9_000, "DELIVERED", "h2"), "sk": "REQUEST_ITEM_PLAN#p1"},
        {**th_row(None, 9_000, "ACTIVE", "h3"), "sk": "CLIENT#client-1"},
        # A request item record without its id cannot be projected.
        th_row(None, 9_000, "SENDING", "h4"),
    ]
    result = latest(rows)
    assert list(result) == ["a"]
    assert result["a"]["_rank"] == "0h1"


def test_request_item_status_projects_columns():
    created = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    rows = [
        th_row(
            "a",
            0,
            "DELIVERED",
            "h",
            createddate=created,
            completedcommunicationtypes=["SMS", "EMAIL"],
            nhsnumber="9434765919",
        )
    ]
    row = latest(rows)["a"]
    assert row["createdtime"] == created
    assert row["completedtime"] is None
    assert row["completedcommunicationtypes"] == ["SMS", "EMAIL"]
    assert row["timestamp"] == T0


ITEM_SUMMARY_INPUT = pa.schema(
    [
        *[
            (name, pa.string())
            for name in ("requestitemid", "clientid", "campaignid", "sendinggroupid")
        ],
        ("sendinggroupidversion", pa.string()),
        ("requestrefid", pa.string()),
        ("requestid", pa.string()),
        ("createddate", pa.date32()),
        ("status", pa.string()),
        ("completedcommunicationtypes", pa.list_(pa.string())),
        ("failedcommunicationtypes", pa.list_(pa.string())),
    ]
)


def status_row(
    item: str,
    client: str,
    campaign: str | None,
    created: date,
    status: str,
    delivered: list[str] | None = None,
    failed: list[str] | None = None,
    version: str = "1",
) -> dict:
    return {
        "requestitemid": item,
        "clientid": client,
        "campaignid": campaign,
        "sendinggroupid": "sg-1",
        "sendinggroupidversion": version,
        "requestrefid": f"ref-{client}",
        "requestid": f"req-{client}",
        "createddate": created,
        "status": status,
        "completedcommunicationtypes": delivered,
        "failedcommunicationtypes": failed,
    }


def test_request_item_status_summary_counts_per_group():
    d1, d2, old = date(2026, 3, 2), date(2026, 3, 3), date(2026, 2, 1)
    items = pa.Table.from_pylist(
        [
            status_row("i1", "c1", "camp", d1, "DELIVERED", ["NHSAPP"], []),
            status_row("i2", "c1", "camp", d1, "DELIVERED", ["SMS"], ["NHSAPP"]),
            status_row("i3", "c1", "camp", d1, "FAILED", [], ["NHSAPP", "SMS"]),
            status_row("i4", "c1", "camp", d1, "SENDING"),
            status_row("i5", "c1", "camp", d2, "ENRICHED"),
            status_row("i6", "c1", None, d1, "FAILED", [], []),
            status_row("i7", "c1", None, d1, "FAILED", [], ["LETTER"]),
            status_row("i8", "c2", "camp", d1, "DELIVERED", ["EMAIL"], []),
            # Another version of the sending group is a group of its own.
            status_row("i9", "c2", "camp", d1, "DELIVERED", ["EMAIL"], [], version="2"),
            status_row("i0", "c2", "camp", old, "DELIVERED", ["EMAIL"], []),
        ],
        schema=ITEM_SUMMARY_INPUT,
    )
    summary = run_query(
        REQUEST_ITEM_STATUS_SUMMARY.sql(),
        {"request_item_status": items},
        {"window_start_date": date(2026, 3, 1)},
    )
    names = [name for name, _ in REQUEST_ITEM_STATUS_SUMMARY.measures]
    counts = {
        (r["clientid"], r["campaignid"], r["sendinggroupidversion"], r["createddate"]): {
            name: r[name] for name in names if r[name]
        }
        for r in summary.to_pylist()
    }
    assert counts == {
        ("c1", "camp", "1", d1): {
            "requestedcount": 4,
            "deliveredcount": 2,
            "failedcount": 1,
            "completedcount": 3,
            "outstandingcount": 1,
            "nhsappdeliveredcount": 1,
            "smsdeliveredcount": 1,
            "nhsappfailedcount": 2,
            "smsfailedcount": 1,
        },
        ("c1", "camp", "1", d2): {"requestedcount": 1, "outstandingcount": 1},
        ("c1", None, "1", d1): {
            "requestedcount": 2,
            "failedcount": 2,
            "completedcount": 2,
            "letterfailedcount": 1,
        },
        ("c2", "camp", "1", d1): {
            "requestedcount": 1,
            "deliveredcount": 1,
            "completedcount": 1,
            "emaildeliveredcount": 1,
        },
        ("c2", "camp", "2", d1): {
            "requestedcount": 1,
            "deliveredcount": 1,
            "completedcount": 1,
            "emaildeliveredcount": 1,
        },
    }
    assert summary.column_names == [*REQUEST_ITEM_STATUS_SUMMARY.dimensions, *names]
    assert all(summary.schema.field(name).type == pa.int64() for name in names)


def test_batch_summary_adds_the_batch_to_the_dimensions():
    day = date(2026, 3, 2)
    items = pa.Table.from_pylist(
        [
            status_row("i1", "c1", "camp", day, "DELIVERED", ["SMS"], []),
            status_row("i2", "c2", "camp", day, "DELIVERED", ["SMS"], []),
        ],
        schema=ITEM_SUMMARY_INPUT,
    )
    summary = run_query(
        REQUEST_ITEM_STATUS_SUMMARY_BATCH.sql(),
        {"request_item_status": items},
        {"window_start_date": day},
    ).to_pylist()
    assert sorted((r["requestrefid"], r["requestid"], r["requestedcount"]) for r in summary) == [
        ("ref-c1", "req-c1", 1),
        ("ref-c2", "req-c2", 1),
    ]


def test_render_fills_placeholders_with_literals():
    sql = "SELECT :a, :b, :when_day, :at, :a"
    rendered = render(
        sql,
        {"a": 3, "b": 1.5, "when_day": date(2026, 3, 29), "at": datetime(2026, 3, 29, tzinfo=UTC)},
    )
    assert rendered == (
        "SELECT 3, 1.5, DATE '2026-03-29', TIMESTAMPTZ '2026-03-29T00:00:00+00:00', 3"
    )


def test_render_leaves_casts_and_text_without_placeholders_alone():
    assert render("SELECT '12:30', x::BIGINT", {}) == "SELECT '12:30', x::BIGINT"


def test_render_rejects_missing_parameter():
    with pytest.raises(KeyError, match=":day_start"):
        render(load_sql("completed_comms_report"), {})


@pytest.mark.parametrize("value", [True, "2026-03-29", None, Decimal("1.5"), b"x"])
def test_render_rejects_unsupported_parameter_types(value):
    with pytest.raises(TypeError):
        render("SELECT :p", {"p": value})


@pytest.mark.parametrize("name", SQL_NAMES)
def test_transpile_gives_spark_sql(name):
    spark_sql = transpile(name)
    assert spark_sql.lstrip().startswith(("/*", "SELECT", "WITH"))
    assert "SELECT" in spark_sql
    assert '"' not in spark_sql  # Spark quotes identifiers with backticks


def test_sql_files_are_found_for_transpile_tests():
    assert {"completed_comms_report", "request_item_status", "client_latest_name"} <= set(SQL_NAMES)


def test_transpile_request_item_status_runs_on_spark_like_duckdb(spark: SparkSession):
    rows = [*ORDERING_ROWS, th_row("old", -10_000, "DELIVERED", "h-old")]
    spark.createDataFrame(history(rows)).createOrReplaceTempView("transaction_history")
    got = spark.sql(transpile("request_item_status")).collect()
    on_spark = {row["requestitemid"]: (row["status"], row["_rank"]) for row in got}
    on_duckdb = {k: (v["status"], v["_rank"]) for k, v in latest(rows).items()}
    assert on_spark == on_duckdb


def test_local_dates_follow_london_across_bst_boundaries():
    instants = [
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # GMT still: 00:30 on the 29th
        datetime(2026, 3, 28, 23, 30, tzinfo=UTC),  # GMT
        datetime(2026, 3, 29, 23, 30, tzinfo=UTC),  # BST: 00:30 on the 30th
        datetime(2026, 6, 30, 23, 30, tzinfo=UTC),  # BST: 1 July
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),  # BST: 25 October
        datetime(2026, 10, 25, 23, 30, tzinfo=UTC),  # GMT again: 25 October
        datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # GMT: still 2026
        None,
    ]
    for unit in ("ms", "us"):
        timestamps = pa.array(instants, type=pa.timestamp(unit, tz="UTC"))
        assert local_dates(timestamps, "Europe/London").to_pylist() == [
            date(2026, 3, 29),
            date(2026, 3, 28),
            date(2026, 3, 30),
            date(2026, 7, 1),
            date(2026, 10, 25),
            date(2026, 10, 25),
            date(2026, 12, 31),
            None,
        ]


def test_local_dates_accepts_chunked_arrays():
    chunked = pa.chunked_array(
        [pa.array([datetime(2026, 6, 30, 23, 30, tzinfo=UTC)], type=pa.timestamp("ms", tz="UTC"))]
    )
    assert local_dates(chunked, "Europe/London").to_pylist() == [date(2026, 7, 1)]


def test_local_today_and_yesterday_use_the_reporting_zone():
    now = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    assert local_today("Europe/London", now) == date(2026, 7, 1)
    assert local_yesterday("Europe/London", now) == date(2026, 6, 30)
    assert local_today("UTC", now) == date(2026, 6, 30)


def test_a_dataset_read_once_is_streamed_and_one_read_twice_is_read_whole() -> None:
    import pyarrow.dataset as pa_ds

    from transforms.reporting import _scan

    data = pa_ds.dataset(pa.table({"a": [1, 2], "b": ["x", "y"], "unused": [0, 0]}))
    once = _scan(data, "SELECT a, b FROM t", "t")
    twice = _scan(data, "SELECT a FROM t JOIN t AS u USING (a)", "t")
    assert isinstance(once, pa.RecordBatchReader)
    assert once.read_all().column_names == ["a", "b"]
    assert isinstance(twice, pa.Table) and twice.column_names == ["a"]
