"""NHS Notify's analyst queries (``QUERIES``), on hand-worked items and plans."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from transforms.reporting.dictionary import REPORTING_COLUMNS, arrow_schema
from transforms.reporting.views import QUERIES, VIEWS_BY_NAME, ViewParameters
from transforms.reporting.views.compute import compute_view

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
PARAMS = ViewParameters(as_of_date=date(2026, 5, 10))


def table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = arrow_schema(REPORTING_COLUMNS[name])
    return pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema=schema)


def ri(item: str, person: str | None, hour: int) -> dict[str, Any]:
    return {
        "clientid": "c1",
        "requestitemid": item,
        "nhsnumberhash": person,
        "createdtime": T0 + timedelta(hours=hour),
    }


def rip(item: str, channel: str, status: str, reason: str | None = None, **extra: Any):
    return {
        "clientid": "c1",
        "requestitemid": item,
        "requestitemplanid": f"{item}-{channel}",
        "communicationtype": channel,
        "status": status,
        "failedreason": reason,
        "completedtime": extra.pop("completed", T0),
        "recipientcontactid": extra.pop("contact", None),
        **extra,
    }


PERMANENT = "Supplier reported PERMANENT_FAILURE"
TEMPORARY = "Supplier reported TEMPORARY_FAILURE"


def test_pds_cleared_failures_pairs_each_delivery_with_the_previous_item_on_its_channel():
    items = table("request_item_status", [
        ri("a1", "H1", 0), ri("a2", "H1", 1), ri("a3", "H1", 2), ri("a4", "H1", 3),
        ri("b1", "H2", 0), ri("b2", "H2", 1),
        ri("c1", "H3", 0), ri("c2", "H3", 1),
        ri("n1", None, 0), ri("n2", None, 1),
    ])  # fmt: skip
    plans = table("request_item_plan_status", [
        # H1 by SMS: a1 failed permanently, a2 delivered (a row); a3 failed for another
        # reason, a4 delivered (no row). By EMAIL: a2 failed temporarily, a4 delivered
        # (a row: a3 has no email plan, so a4's previous email item is a2).
        rip("a1", "SMS", "FAILED", PERMANENT),
        rip("a2", "SMS", "DELIVERED", completed=T0 + timedelta(hours=5), contact="sms-2"),
        rip("a2", "EMAIL", "FAILED", TEMPORARY),
        rip("a3", "SMS", "FAILED", "Rejected by supplier"),
        rip("a4", "SMS", "DELIVERED"),
        rip("a4", "EMAIL", "DELIVERED", completed=T0 + timedelta(hours=4), contact="mail-4"),
        # H2: a failed NHS App message is no channel of this query; a letter neither.
        rip("b1", "NHSAPP", "FAILED", PERMANENT),
        rip("b1", "LETTER", "FAILED", PERMANENT),
        rip("b2", "SMS", "DELIVERED"),
        # H3: the later item failed, the earlier delivered: the wrong way round.
        rip("c1", "SMS", "DELIVERED"),
        rip("c2", "SMS", "FAILED", PERMANENT),
        # No recipient: never linked, whatever the order.
        rip("n1", "SMS", "FAILED", PERMANENT),
        rip("n2", "SMS", "DELIVERED"),
    ])  # fmt: skip
    [spec] = QUERIES
    assert VIEWS_BY_NAME["pds_cleared_failures"] is spec
    got = compute_view(spec, {"request_item_status": items, "request_item_plan_status": plans},
                       PARAMS)  # fmt: skip
    assert got.column_names == [
        "requestitemid",
        "completedtime",
        "communicationtype",
        "recipientcontactid",
    ]
    rows = [
        (r["requestitemid"], r["communicationtype"], r["recipientcontactid"])
        for r in got.to_pylist()
    ]
    assert rows == [("a4", "EMAIL", "mail-4"), ("a2", "SMS", "sms-2")]
    assert got["completedtime"].to_pylist() == [T0 + timedelta(hours=4), T0 + timedelta(hours=5)]


def test_pds_cleared_failures_is_empty_with_its_columns_on_empty_inputs():
    [spec] = QUERIES
    empty = {n: arrow_schema(REPORTING_COLUMNS[n]).empty_table() for n in spec.reads}
    got = compute_view(spec, empty, PARAMS)
    assert got.num_rows == 0 and got.schema == arrow_schema(spec.columns)
