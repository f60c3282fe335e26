"""NHS Notify's completed comms and batch report rows, on hand-worked items and plans."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from assets.reports.writing import (
    completed_batch_rows,
    completed_comms_report_key,
    completed_comms_rows,
    write_completed_comms_reports,
)
from resources.object_store import LocalObjectStore
from transforms.reporting.dictionary import REPORTING_COLUMNS, arrow_schema

# 1 July 2026 in London (BST) runs from 23:00 UTC on 30 June to 23:00 UTC on 1 July.
DAY = date(2026, 7, 1)
NHS_COLUMNS = (
    "requestid requestrefid requestitemid requestitemrefid requestitemcompletedtime "
    "requestitemfailedreason sendinggroupid sendinggroupidversion sendinggroupname "
    "sendinggroupcreatedtime requestitemstatus requestitemplanid requestitemplancompletedtime "
    "requestitemplanstatus communicationtype channeltype requestitemplanfailedreason templateid "
    "requestitemplanfailedreasoncode requestitemfailedreasoncode"
).split()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


CREATED = at("2026-06-30T08:00:00+00:00")


def table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = arrow_schema(REPORTING_COLUMNS[name])
    return pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema=schema)


def ri(item: str, status: str, completed: str | None, client: str = "c1", **extra: Any):
    return {
        "clientid": client,
        "requestid": extra.pop("request", "r1"),
        "requestrefid": "ref-r1",
        "requestitemid": item,
        "requestitemrefid": f"ref-{item}",
        "sendinggroupid": "g1",
        "sendinggroupidversion": "3",
        "sendinggroupname": "Screening",
        "sendinggroupcreatedtime": at("2026-01-02T03:04:05.678+00:00"),
        "status": status,
        "createdtime": extra.pop("created", CREATED),
        "completedtime": at(completed) if completed else None,
        **extra,
    }


def rip(plan: str, item: str, status: str, completed: str | None, channel: str, **extra: Any):
    return {
        "clientid": extra.pop("client", "c1"),
        "requestid": extra.pop("request", "r1"),
        "requestitemid": item,
        "requestitemplanid": plan,
        "status": status,
        "communicationtype": channel,
        "channeltype": "primary",
        "templateid": f"t-{channel}",
        "createdtime": extra.pop("created", CREATED),
        "completedtime": at(completed) if completed else None,
        **extra,
    }


ITEMS = table(
    "request_item_status",
    [
        ri("i1", "DELIVERED", "2026-07-01T10:00:00.123+00:00"),
        ri(
            "i2",
            "FAILED",
            "2026-07-01T22:59:59.999+00:00",
            failedreason="No contact details",
            failedreasoncode="CM_NO_CONTACT",
        ),
        ri("i3", "FAILED", "2026-07-01T23:00:00+00:00"),  # 00:00 London on the 2nd
        ri("i4", "DELIVERED", "2026-07-01T12:00:00+00:00", client="c2"),
        ri("i5", "SENDING", None),
        ri("i6", "FAILED", "2026-07-01T09:00:00+00:00"),  # has a plan, failed on the 29th
        ri("i7", "DELIVERED", "2026-07-01T09:00:00+00:00", created=at("2026-03-01T00:00+00:00")),
    ],
)
PLANS = table(
    "request_item_plan_status",
    [
        rip(
            "p1a",
            "i1",
            "FAILED",
            "2026-06-30T23:30:00+00:00",
            "NHSAPP",
            failedreason="Not read",
            failedreasoncode="NHSAPP_UNREAD",
        ),
        rip("p1b", "i1", "DELIVERED", "2026-07-01T10:00:00.123+00:00", "SMS"),
        rip("p4a", "i4", "DELIVERED", "2026-06-30T22:59:00+00:00", "EMAIL", client="c2"),
        rip("p4b", "i4", "SKIPPED", "2026-07-01T12:00:00+00:00", "LETTER", client="c2"),
        rip("p5a", "i5", "PENDING", None, "NHSAPP"),
        rip("p5b", "i5", "FAILED", "2026-07-01T09:00:00+00:00", "SMS"),
        rip("p6", "i6", "FAILED", "2026-06-29T09:00:00+00:00", "SMS"),
        rip(
            "p7",
            "i7",
            "DELIVERED",
            "2026-07-01T09:00:00+00:00",
            "SMS",
            created=at("2026-03-01T00:00+00:00"),
        ),
    ],
)


def test_comms_rows_are_the_plans_and_planless_failures_of_the_local_day() -> None:
    rows = completed_comms_rows(
        items=ITEMS, plans=PLANS, report_date=DAY, timezone="Europe/London"
    ).to_pylist()
    # i3 failed after local midnight; p4a ended on the 30th; p5a is not final; i6 has a
    # plan, so it is no plan-less failure; i7 was created over 90 days before the 2nd.
    assert [(r["clientid"], r["requestitemid"], r["requestitemplanid"]) for r in rows] == [
        ("c1", "i1", "p1a"),
        ("c1", "i1", "p1b"),
        ("c1", "i2", None),
        ("c1", "i5", "p5b"),
        ("c2", "i4", "p4b"),
    ]
    first, planless = rows[0], rows[2]
    assert first["requestitemplancompletedtime"] == "2026-06-30T23:30:00.000Z"
    assert first["requestitemcompletedtime"] == "2026-07-01T10:00:00.123Z"
    assert first["sendinggroupcreatedtime"] == "2026-01-02T03:04:05.678Z"
    assert (first["requestitemplanstatus"], first["requestitemplanfailedreasoncode"]) == (
        "FAILED",
        "NHSAPP_UNREAD",
    )
    assert planless["requestitemcompletedtime"] == "2026-07-01T22:59:59.999Z"
    assert planless["requestitemplanstatus"] is None
    assert planless["requestitemfailedreasoncode"] == "CM_NO_CONTACT"


def test_comms_report_day_follows_the_reporting_time_zone() -> None:
    rows = completed_comms_rows(items=ITEMS, plans=PLANS, report_date=DAY, timezone="UTC")
    got = [(r["requestitemid"], r["requestitemplanid"]) for r in rows.to_pylist()]
    # In UTC, p1a (23:30 on the 30th) is the day before and i3 (23:00 on the 1st) is in.
    assert got == [("i1", "p1b"), ("i2", None), ("i3", None), ("i5", "p5b"), ("i4", "p4b")]


def test_comms_report_csv_has_nhs_notify_columns_in_order(tmp_path: Path) -> None:
    objects = LocalObjectStore(root=str(tmp_path))
    rows = completed_comms_rows(items=ITEMS, plans=PLANS, report_date=DAY, timezone="Europe/London")
    writes = write_completed_comms_reports(
        rows=rows, clients=["c1", "c2"], report_date=DAY, objects=objects
    )
    assert len(writes.written) == 2
    text = objects.read_bytes(completed_comms_report_key("c1", DAY)).decode()
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == NHS_COLUMNS
    assert [r[2] for r in reader] == ["i1", "i1", "i2", "i5"]


def testcompleted_batch_rows_are_the_batch_completed_comms_as_of_its_last_day() -> None:
    items = table("request_item_status", [
        ri("b1", "DELIVERED", "2026-07-01T10:00:00+00:00", request="rb"),
        ri("b2", "FAILED", "2026-07-01T11:00:00+00:00", request="rb"),
        # Created 95 days before the batch ended: outside NHS Notify's 90-day window.
        ri("b3", "DELIVERED", "2026-07-01T11:00:00+00:00", request="rb",
           created=at("2026-03-28T00:00+00:00")),
    ])  # fmt: skip
    plans = table("request_item_plan_status", [
        rip("q1", "b1", "DELIVERED", "2026-07-01T10:00:00+00:00", "EMAIL", request="rb"),
        rip("q1x", "b1", "SKIPPED", "2026-07-01T10:00:00+00:00", "SMS", request="rb"),
        rip("q3", "b3", "DELIVERED", "2026-07-01T11:00:00+00:00", "SMS", request="rb",
            created=at("2026-03-28T00:00+00:00")),
    ])  # fmt: skip
    rows = completed_batch_rows(items, plans)
    assert rows.column_names == ["clientid", *NHS_COLUMNS]
    got = [(r["requestitemid"], r["requestitemplanid"]) for r in rows.to_pylist()]
    assert got == [("b1", "q1"), ("b1", "q1x"), ("b2", None)]
