"""Projection specs and their SQL: latest record per key, dimensions, window edges."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from transforms.cdc import TRANSACTION_HISTORY_SCHEMA
from transforms.reporting import run_query, run_sql, transpile
from transforms.reporting.staging import (
    CLIENT_LATEST_NAME,
    NEWER,
    PROJECTIONS,
    REQUEST_ITEM_PLAN_COMPLETED_SUMMARY,
    REQUEST_ITEM_PLAN_STATUS,
    REQUEST_ITEM_STATUS,
    REQUEST_ITEM_STATUS_SUMMARY,
    project,
    projection_merge_clauses,
)

T0 = int(datetime(2026, 3, 28, 23, 30, tzinfo=UTC).timestamp() * 1000)


def rec(sk: str, offset_ms: int, hash_: str, **fields: Any) -> dict[str, Any]:
    return {"sk": sk, "timestamp": T0 + offset_ms, "_record_hash": hash_, **fields}


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRANSACTION_HISTORY_SCHEMA)


def fake_hash(value: str) -> str:
    return f"h({value})"


def projected(spec: Any, rows: list[dict[str, Any]]) -> dict[str, dict]:
    result = project(
        spec,
        table(rows),
        pseudonymise=fake_hash,
        tz="Europe/London",
    )
    return {r[spec.key]: r for r in result.to_pylist()}


PLAN_ROWS = [
    rec("REQUEST_ITEM_PLAN#p1", 0, "a", requestitemplanid="p1", status="PENDING",
        communicationtype="SMS", ordernumber=1, clientid="c1", requestitemid="i1"),
    rec("REQUEST_ITEM_PLAN#p1", 5_000, "b", requestitemplanid="p1", status="SENDING",
        communicationtype="SMS", ordernumber=1, clientid="c1", requestitemid="i1"),
    # Same timestamp: the final state wins even with a lower hash.
    rec("REQUEST_ITEM_PLAN#p1", 9_000, "0", requestitemplanid="p1", status="DELIVERED",
        communicationtype="SMS", ordernumber=1, clientid="c1", requestitemid="i1"),
    rec("REQUEST_ITEM_PLAN#p1", 9_000, "z", requestitemplanid="p1", status="SENDING",
        communicationtype="SMS", ordernumber=1, clientid="c1", requestitemid="i1"),
    # SKIPPED is final too.
    rec("REQUEST_ITEM_PLAN#p2", 1_000, "a", requestitemplanid="p2", status="PENDING",
        communicationtype="LETTER", ordernumber=2, clientid="c1", requestitemid="i1"),
    rec("REQUEST_ITEM_PLAN#p2", 1_000, "b", requestitemplanid="p2", status="SKIPPED",
        communicationtype="LETTER", ordernumber=2, clientid="c1", requestitemid="i1"),
    # Not plans: ignored.
    rec("REQUEST_ITEM#i1", 20_000, "x", requestitemid="i1", requestitemplanid="p1",
        status="DELIVERED"),
    rec("CLIENT#c1", 20_000, "y", clientid="c1", clientname="Trust"),
]  # fmt: skip


def test_published_rank_is_terminal_flag_then_keyed_hash_never_the_plain_record_hash():
    result = projected(REQUEST_ITEM_PLAN_STATUS, PLAN_ROWS)
    # The plain content hash of the winning records ("0" for p1, "b" for p2) is not
    # published: only the keyed hash, behind the terminal flag that orders ties.
    assert {k: r["_rank"] for k, r in result.items()} == {"p1": "1h(0)", "p2": "1h(b)"}


def test_request_item_plan_status_keeps_latest_plan_record_with_terminal_tie_break():
    result = projected(REQUEST_ITEM_PLAN_STATUS, PLAN_ROWS)
    assert {k: r["status"] for k, r in result.items()} == {"p1": "DELIVERED", "p2": "SKIPPED"}
    assert result["p1"]["_rank"] == "1h(0)"
    assert result["p2"]["ordernumber"] == 2
    assert "nhsnumber" not in result["p1"] and "nhsnumberhash" not in result["p1"]


@pytest.mark.parametrize("seed", range(6))
def test_projections_independent_of_record_order(seed):
    shuffled = list(PLAN_ROWS)
    random.Random(seed).shuffle(shuffled)
    for spec in PROJECTIONS:
        assert projected(spec, shuffled) == projected(spec, PLAN_ROWS), spec.table


def iso(offset_ms: int) -> datetime:
    return datetime.fromtimestamp((T0 + offset_ms) / 1000, tz=UTC)


def test_client_latest_name_is_the_name_on_the_newest_request_item_by_created_time():
    # As NHS Notify takes it: among request-item records, the clientname of the item
    # created last; createdtime is that item's creation time. The change timestamp
    # does not decide: i2 changed last, but i3 was created later.
    rows = [
        rec("REQUEST_ITEM#i1", 0, "a", clientid="c1", clientname="Hospital Trust A",
            createddate=iso(0)),
        rec("REQUEST_ITEM#i2", 60_000, "b", clientid="c1", clientname="Old name",
            createddate=iso(1_000)),
        rec("REQUEST_ITEM#i3", 5_000, "c", clientid="c1",
            clientname="A University Hospitals", createddate=iso(5_000)),
        rec("REQUEST_ITEM#i4", 0, "d", clientid="c2", clientname="Trust B",
            createddate=iso(0)),
        # Not request-item records: never a source of names.
        rec("CLIENT#c1", 90_000, "e", clientid="c1", clientname="client record",
            createddate=iso(90_000)),
        rec("REQUEST_ITEM_PLAN#p1", 90_000, "f", clientid="c2", clientname="plan record",
            createddate=iso(90_000)),
    ]  # fmt: skip
    result = projected(CLIENT_LATEST_NAME, rows)
    assert {k: r["clientname"] for k, r in result.items()} == {
        "c1": "A University Hospitals",
        "c2": "Trust B",
    }
    assert result["c1"]["createdtime"] == iso(5_000)
    # The MERGE orders a client's rows by createdtime, carried as "timestamp".
    assert result["c1"]["timestamp"] == T0 + 5_000


def test_request_item_status_dimensions_take_latest_non_null_value():
    rows = [
        rec("REQUEST_ITEM#i1", 0, "a", requestitemid="i1", status="PENDING_ENRICHMENT",
            patientodscode="OLD01", clientid="c1", nhsnumber="9434765919"),
        rec("REQUEST_ITEM#i1", 1_000, "b", requestitemid="i1", status="ENRICHED",
            patientodscode="NEW02"),
        # The newest record lacks every dimension (an older feed version): kept, not nulled.
        rec("REQUEST_ITEM#i1", 2_000, "c", requestitemid="i1", status="DELIVERED"),
    ]  # fmt: skip
    row = projected(REQUEST_ITEM_STATUS, rows)["i1"]
    assert row["status"] == "DELIVERED"
    assert row["patientodscode"] == "NEW02"
    assert row["clientid"] == "c1"
    assert row["nhsnumberhash"] == "h(9434765919)"
    assert "nhsnumber" not in row


def test_projection_adds_london_dates():
    created = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # still 28 March in London (GMT)
    completed = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)  # 30 March in London (BST)
    rows = [
        rec("REQUEST_ITEM#i1", 0, "a", requestitemid="i1", status="DELIVERED",
            createddate=created, completeddate=completed),
    ]  # fmt: skip
    row = projected(REQUEST_ITEM_STATUS, rows)["i1"]
    assert row["createddate"] == date(2026, 3, 28)
    assert row["completeddate"] == date(2026, 3, 30)


def test_projection_merge_clauses_update_newer_rows_and_fill_missing_dimensions():
    columns = ["requestitemid", "clientid", "status", "nhsnumberhash", "createddate", "timestamp"]
    (newer_when, newer), (fill_when, fill) = projection_merge_clauses(REQUEST_ITEM_STATUS, columns)
    assert newer_when == NEWER
    assert newer["status"] == "s.`status`"
    assert newer["clientid"] == "coalesce(s.`clientid`, t.`clientid`)"
    assert newer["nhsnumberhash"] == "coalesce(s.`nhsnumberhash`, t.`nhsnumberhash`)"
    assert "requestitemid" not in newer
    assert set(fill) == {"clientid", "nhsnumberhash", "createddate"}
    assert "(t.`clientid` IS NULL AND s.`clientid` IS NOT NULL)" in fill_when


def test_aggregation_updates_never_reduce_totals():
    updates = REQUEST_ITEM_STATUS_SUMMARY.updates()
    assert updates["requestedcount"] == "greatest(t.`requestedcount`, s.`requestedcount`)"
    assert updates["smsdeliveredcount"] == "greatest(t.`smsdeliveredcount`, s.`smsdeliveredcount`)"
    assert updates["outstandingcount"] == "s.`outstandingcount`"
    assert set(updates) == {name for name, _ in REQUEST_ITEM_STATUS_SUMMARY.measures}


def test_request_item_plan_completed_summary_counts_final_plans_per_group():
    day = date(2026, 3, 2)
    plans = pa.Table.from_pylist(
        [
            {"requestitemplanid": "p1", "requestitemid": "i1", "clientid": "c1",
             "communicationtype": "SMS", "status": "DELIVERED", "createddate": day,
             "completeddate": day},
            {"requestitemplanid": "p2", "requestitemid": "i2", "clientid": "c1",
             "communicationtype": "SMS", "status": "DELIVERED", "createddate": day,
             "completeddate": day},
            {"requestitemplanid": "p3", "requestitemid": "i3", "clientid": "c1",
             "communicationtype": "SMS", "status": "FAILED", "failedreason": "No mobile",
             "createddate": day, "completeddate": day},
            {"requestitemplanid": "p4", "requestitemid": "i4", "clientid": "c1",
             "communicationtype": "SMS", "status": "SENDING", "createddate": day},
            {"requestitemplanid": "p5", "requestitemid": "i5", "clientid": "c1",
             "communicationtype": "SMS", "status": "DELIVERED", "createddate": date(2026, 1, 1),
             "completeddate": day},
        ],
        schema=pa.schema(
            [(n, pa.string()) for n in (
                "requestitemplanid", "requestitemid", "clientid", "campaignid", "sendinggroupid",
                "sendinggroupidversion", "communicationtype", "supplier", "channeltype", "status",
                "failedreason", "failedreasoncode", "contactdetailsource")]
            + [("createddate", pa.date32()), ("completeddate", pa.date32())]
        ),
    )  # fmt: skip
    summary = run_query(
        REQUEST_ITEM_PLAN_COMPLETED_SUMMARY.sql(),
        {"request_item_plan_status": plans},
        {"window_start_date": date(2026, 3, 1)},
    )
    counts = {(r["status"], r["failedreason"]): r["requestitemcount"] for r in summary.to_pylist()}
    assert counts == {("DELIVERED", None): 2, ("FAILED", "No mobile"): 1}


@pytest.mark.parametrize("spec", [REQUEST_ITEM_PLAN_STATUS, CLIENT_LATEST_NAME], ids=str)
def test_projection_sql_runs_on_spark_like_duckdb(spark: SparkSession, spec):
    rows = [
        *PLAN_ROWS,
        rec("REQUEST_ITEM#i9", 30_000, "q", clientid="c1", clientname="Trust 2",
            createddate=iso(30_000)),
    ]  # fmt: skip
    spark.createDataFrame(table(rows)).createOrReplaceTempView("transaction_history")
    got = spark.sql(transpile(spec.table), args={}).collect()
    on_spark = {row[spec.key]: (row["_rank"], row["timestamp"]) for row in got}
    on_duckdb = {
        k: (v["_rank"], v["timestamp"])
        for k, v in {
            r[spec.key]: r
            for r in run_sql(spec.table, {"transaction_history": table(rows)}, {}).to_pylist()
        }.items()
    }
    assert on_spark == on_duckdb and on_spark
