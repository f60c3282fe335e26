"""NHS Notify's views on DuckDB: one hand-worked example per view, exact rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest

from transforms.reporting.dictionary import REPORTING_COLUMNS
from transforms.reporting.views import VIEWS, VIEWS_BY_NAME, ViewParameters, load_view_sql
from transforms.reporting.views.compute import arrow_schema, columns_of, compute_view

AS_OF = date(2026, 4, 6)  # a Monday; British Summer Time since 29 March
PARAMS = ViewParameters(as_of_date=AS_OF, sms_nudge_client_id="nudge")


def at(day: str, clock: str = "10:00:00") -> datetime:
    """A UTC instant, '2026-04-01' and '10:00:00[.fff]'."""
    return datetime.fromisoformat(f"{day}T{clock}+00:00").astimezone(UTC)


def table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    """A staging table or view of these rows (unnamed columns null)."""
    return pa.Table.from_pylist(rows, schema=arrow_schema(columns_of(name)))


def empty(name: str) -> pa.Table:
    return table(name, [])


def run(view: str, params: ViewParameters = PARAMS, **tables: pa.Table) -> list[dict[str, Any]]:
    """The view's rows over these tables (any other input empty)."""
    spec = VIEWS_BY_NAME[view]
    inputs = {name: tables.get(name, empty(name)) for name in spec.reads}
    result = compute_view(spec, inputs, params)
    assert result.schema == arrow_schema(spec.columns)
    return result.to_pylist()


def pick(rows: list[dict[str, Any]], *names: str) -> list[tuple[Any, ...]]:
    """These columns of the rows, sorted column by column with nulls last."""

    def key(values: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
        return tuple((True, 0) if v is None else (False, v) for v in values)

    return sorted((tuple(row[n] for n in names) for row in rows), key=key)


def test_every_view_has_sql_and_a_spec() -> None:
    assert len(VIEWS) == 23
    for spec in VIEWS:
        assert load_view_sql(spec.name).strip()
        assert spec.description.startswith("NHS Notify view")


@pytest.mark.parametrize("spec", VIEWS, ids=lambda s: s.name)
def test_every_view_runs_on_empty_inputs_with_its_schema(spec: Any) -> None:
    result = compute_view(spec, {name: empty(name) for name in spec.reads}, PARAMS)
    assert result.schema == arrow_schema(spec.columns)
    assert result.num_rows == (1461 if spec.name == "dates" else 0)


# -- the SMS nudge family ------------------------------------------------------------------


def nudge_items() -> pa.Table:
    return table(
        "request_item_status",
        [
            {
                "requestitemid": "n1",
                "clientid": "nudge",
                "billingref": "client-a|camp-1|bill-9",
                "requestitemrefid": "item-9_plan-9",
                "_rank": "x",
            },
            {
                "requestitemid": "n2",
                "clientid": "nudge",
                "billingref": "client-b||",
                "requestitemrefid": "item-x",
            },
            {"requestitemid": "item-9", "clientid": "client-a", "sendinggroupid": "group-9"},
        ],
    )


def nudge_plans() -> pa.Table:
    return table(
        "request_item_plan_status",
        [
            {
                "requestitemplanid": "np1",
                "clientid": "nudge",
                "requestitemid": "n1",
                "communicationtype": "SMS",
                "status": "DELIVERED",
                "createdtime": at("2026-04-01", "10:00:00"),
                "completedtime": at("2026-04-01", "10:00:30"),
                "sendtime": at("2026-04-01", "10:00:10"),
            },
            {
                "requestitemplanid": "np2",
                "clientid": "nudge",
                "requestitemid": "n2",
                "communicationtype": "SMS",
                "status": "DELIVERED",
                "createdtime": at("2026-04-01", "23:30:00"),
            },
            {
                "requestitemplanid": "plan-9",
                "clientid": "client-a",
                "requestitemid": "item-9",
                "communicationtype": "NHSAPP",
                "status": "DELIVERED",
                "completedtime": at("2026-04-01", "11:30:00"),
                "senderodscode": "ODS9",
            },
        ],
    )


def nudge_staging(params: ViewParameters = PARAMS) -> pa.Table:
    rows = run("request_item_status_smsnudge_staging", params, request_item_status=nudge_items())
    return table("request_item_status_smsnudge_staging", rows)


def nudge_plan_view() -> pa.Table:
    rows = run(
        "request_item_plan_status_smsnudge",
        request_item_plan_status=nudge_plans(),
        request_item_status=nudge_items(),
        request_item_status_smsnudge_staging=nudge_staging(),
    )
    return table("request_item_plan_status_smsnudge", rows)


def test_smsnudge_staging_unpacks_the_original_from_the_references() -> None:
    rows = nudge_staging().to_pylist()
    assert pick(
        rows,
        "requestitemid",
        "originatingclientid",
        "originatingcampaignid",
        "originatingbillingref",
        "originatingrequestitemid",
        "originatingrequestitemplanid",
    ) == [
        ("n1", "client-a", "camp-1", "bill-9", "item-9", "plan-9"),
        ("n2", "client-b", None, None, "item-x", None),
    ]
    assert "_rank" not in rows[0]


def test_smsnudge_staging_is_empty_without_a_nudge_client() -> None:
    assert nudge_staging(ViewParameters(as_of_date=AS_OF)).num_rows == 0


def test_plan_status_smsnudge_adds_the_original_items_sending_group() -> None:
    rows = nudge_plan_view().to_pylist()
    assert pick(
        rows,
        "requestitemplanid",
        "originatingclientid",
        "originatingrequestitemplanid",
        "originatingsendinggroupid",
    ) == [("np1", "client-a", "plan-9", "group-9"), ("np2", "client-b", None, None)]


def test_item_status_smsnudge_takes_the_sending_group_from_the_plans() -> None:
    staging = table(
        "request_item_status_smsnudge_staging",
        [*nudge_staging().to_pylist(), {"requestitemid": "n3", "clientid": "nudge"}],
    )
    rows = run(
        "request_item_status_smsnudge",
        request_item_status_smsnudge_staging=staging,
        request_item_plan_status_smsnudge=nudge_plan_view(),
    )
    assert pick(rows, "requestitemid", "originatingsendinggroupid") == [
        ("n1", "group-9"),
        ("n2", None),
        ("n3", None),
    ]


def test_read_status_measures_hours_to_read_rounded_half_up_to_a_tenth() -> None:
    plans = nudge_plan_view().to_pylist()
    quick = {**plans[0], "requestitemplanid": "np3", "createdtime": at("2026-04-01", "11:27:00")}
    rows = run(
        "request_item_plan_read_status_smsnudge",
        request_item_plan_status_smsnudge=table(
            "request_item_plan_status_smsnudge", [*plans, quick]
        ),
        request_item_plan_status=nudge_plans(),
    )
    assert pick(rows, "requestitemplanid", "createddate", "originalstatus", "hrstoread") == [
        # 10:00 to 11:30 is 1.5 h; 11:27 to 11:30 is 0.05 h, which rounds up to 0.1.
        ("np1", date(2026, 4, 1), "DELIVERED", 1.5),
        ("np2", date(2026, 4, 1), None, None),  # a UTC day: 00:30 on 2 April in London
        ("np3", date(2026, 4, 1), "DELIVERED", 0.1),
    ]


def test_billing_counts_sent_texts_and_delivered_letters_and_bills_nudges_to_the_original() -> None:
    done = at("2026-04-01", "12:00:00")
    sms = {
        "clientid": "client-a",
        "requestitemid": "a1",
        "communicationtype": "SMS",
        "status": "DELIVERED",
        "completedtime": done,
        "sendtime": done,
        "messagelength": 2,
        "messagelengthunits": "FRAGMENTS",
        "senderodscode": "ODSA",
    }
    plans = [
        {**sms, "requestitemplanid": "s1"},
        {**sms, "requestitemplanid": "s2", "status": "FAILED"},
        {**sms, "requestitemplanid": "s3", "status": "FAILED", "sendtime": None},
        {**sms, "requestitemplanid": "s4", "status": "SKIPPED"},
        {**sms, "requestitemplanid": "e1", "communicationtype": "EMAIL"},
        {**sms, "requestitemplanid": "l1", "communicationtype": "LETTER", "sendtime": None},
        {**sms, "requestitemplanid": "l2", "communicationtype": "LETTER", "status": "FAILED"},
        *nudge_plans().to_pylist(),
    ]
    items = [
        *nudge_items().to_pylist(),
        {"requestitemid": "a1", "clientid": "client-a", "billingref": "bill-a"},
    ]
    rows = run(
        "billing_transactions",
        request_item_plan_status=table("request_item_plan_status", plans),
        request_item_status=table("request_item_status", items),
        request_item_plan_status_smsnudge=nudge_plan_view(),
    )
    assert pick(
        rows,
        "billingdate",
        "clientid",
        "campaignid",
        "billingref",
        "senderodscode",
        "communicationtype",
        "messagelength",
        "messagecount",
    ) == [
        # The nudge np1 bills to client-a's campaign and reference, with plan-9's sender.
        (date(2026, 4, 1), "client-a", "camp-1", "bill-9", "ODS9", "SMS", None, 1),
        (date(2026, 4, 1), "client-a", None, "bill-a", "ODSA", "LETTER", 2, 1),
        (date(2026, 4, 1), "client-a", None, "bill-a", "ODSA", "SMS", 2, 2),
    ]


def test_completed_comms_lists_final_plans_and_failed_items_without_plans() -> None:
    created = at("2026-04-01")
    items = [
        {"requestitemid": "i1", "clientid": "c", "status": "FAILED", "createdtime": created},
        {
            "requestitemid": "i2",
            "clientid": "c",
            "status": "DELIVERED",
            "createdtime": created,
            "completedtime": at("2026-04-01", "10:00:00.123999"),
            "sendinggroupcreatedtime": at("2026-01-01", "00:00:00"),
        },
        {
            "requestitemid": "i3",
            "clientid": "c",
            "status": "DELIVERED",
            "createdtime": at("2026-01-05", "23:59:59"),
        },
        {"requestitemid": "i4", "clientid": "c", "status": "SENDING", "createdtime": created},
    ]
    plan = {"clientid": "c", "createdtime": created, "completedtime": at("2026-04-01", "10:05:00")}
    plans = [
        {**plan, "requestitemplanid": "p2a", "requestitemid": "i2", "status": "DELIVERED"},
        {**plan, "requestitemplanid": "p2b", "requestitemid": "i2", "status": "SKIPPED"},
        {**plan, "requestitemplanid": "p2c", "requestitemid": "i2", "status": "SENDING"},
        {**plan, "requestitemplanid": "p3", "requestitemid": "i3", "status": "DELIVERED"},
    ]
    rows = run(
        "completed_comms",
        request_item_status=table("request_item_status", items),
        request_item_plan_status=table("request_item_plan_status", plans),
    )
    assert [
        (r["requestitemid"], r["requestitemplanid"], r["requestitemplanstatus"]) for r in rows
    ] == [("i1", None, None), ("i2", "p2a", "DELIVERED"), ("i2", "p2b", "SKIPPED")]
    assert rows[1]["requestitemcompletedtime"] == "2026-04-01T10:00:00.123Z"
    assert rows[1]["sendinggroupcreatedtime"] == "2026-01-01T00:00:00.000Z"
    assert rows[1]["requestitemplancompletedtime"] == "2026-04-01T10:05:00.000Z"
    assert rows[0]["requestitemcompletedtime"] is None


def test_delivered_messages_has_a_row_per_delivered_channel_on_utc_dates() -> None:
    items: list[dict[str, Any]] = [
        {
            "requestitemid": "i1",
            "clientid": "c",
            "nhsnumberhash": "h1",
            "status": "DELIVERED",
            "createdtime": at("2026-03-31", "23:30:00"),  # 00:30 on 1 April in London
            "completedcommunicationtypes": ["NHSAPP", "SMS"],
        },
        {"requestitemid": "i2", "status": "FAILED", "completedcommunicationtypes": ["EMAIL"]},
        {"requestitemid": "i3", "status": "DELIVERED", "completedcommunicationtypes": None},
    ]
    rows = run("delivered_messages", request_item_status=table("request_item_status", items))
    assert pick(rows, "requestitemid", "communicationtype", "createddate", "createdmonth") == [
        ("i1", "NHSAPP", date(2026, 3, 31), date(2026, 3, 1)),
        ("i1", "SMS", date(2026, 3, 31), date(2026, 3, 1)),
    ]


# -- views over delivered_messages --------------------------------------------------------


def delivered() -> pa.Table:
    """r1: 5 in March (client a: 2 app, 2 SMS; client b: 1 app), 1 email in April;
    r2: 1 app in March; r3: 1 letter in March."""

    def row(day: str, hash_: str, client: str, channel: str) -> dict[str, Any]:
        d = date.fromisoformat(day)
        return {
            "createddate": d,
            "createdmonth": d.replace(day=1),
            "nhsnumberhash": hash_,
            "clientid": client,
            "communicationtype": channel,
        }

    rows = [
        row("2026-03-01", "r1", "a", "NHSAPP"),
        row("2026-03-02", "r1", "a", "NHSAPP"),
        row("2026-03-01", "r1", "b", "NHSAPP"),
        row("2026-03-01", "r1", "a", "SMS"),
        row("2026-03-01", "r1", "a", "SMS"),
        row("2026-03-01", "r2", "a", "NHSAPP"),
        row("2026-03-01", "r3", "a", "LETTER"),
        row("2026-04-01", "r1", "a", "EMAIL"),
    ]
    return table("delivered_messages", rows)


MAR, APR = date(2026, 3, 1), date(2026, 4, 1)
D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


def test_daily_recipient_count() -> None:
    rows = run("daily_recipient_count", delivered_messages=delivered())
    assert pick(rows, "createddate", "clientid", "communicationtype", "recipientcount") == [
        (D1, "a", "LETTER", 1),
        (D1, "a", "NHSAPP", 2),
        (D1, "a", "SMS", 1),
        (D1, "b", "NHSAPP", 1),
        (D2, "a", "NHSAPP", 1),
        (APR, "a", "EMAIL", 1),
    ]


def test_daily_recipient_distribution() -> None:
    rows = run("daily_recipient_distribution", delivered_messages=delivered())
    assert pick(rows, "createddate", "communicationtype", "messagecount", "recipientcount") == [
        (D1, "LETTER", 1, 1),
        (D1, "NHSAPP", 1, 1),  # r2
        (D1, "NHSAPP", 2, 1),  # r1: one from a, one from b
        (D1, "SMS", 2, 1),
        (D2, "NHSAPP", 1, 1),
        (APR, "EMAIL", 1, 1),
    ]


def test_monthly_app_recipients_distribution() -> None:
    rows = run("monthly_app_recipients_distribution", delivered_messages=delivered())
    assert pick(rows, "createdmonth", "appmessagecount", "recipientcount") == [
        (MAR, 1, 1),
        (MAR, 3, 1),
    ]


def test_monthly_app_recipients_multiple_clients() -> None:
    rows = run("monthly_app_recipients_multiple_clients", delivered_messages=delivered())
    assert pick(rows, "createdmonth", "clientcount", "recipientcount") == [(MAR, 2, 1)]


def test_monthly_messages_per_recipient_rounds_half_up_to_one_decimal() -> None:
    rows = run("monthly_messages_per_recipient", delivered_messages=delivered())
    assert pick(
        rows,
        "createdmonth",
        "communicationtype",
        "totalmonthlyrecipients",
        "messagedeliveredcount",
        "averagemessagesperecipient",
    ) == [
        (MAR, "LETTER", 3, 1, 0.3),
        (MAR, "NHSAPP", 3, 4, 1.3),
        (MAR, "SMS", 3, 2, 0.7),
        (APR, "EMAIL", 1, 1, 1.0),
    ]
    quarter = table(
        "delivered_messages",
        [
            {"createdmonth": MAR, "nhsnumberhash": f"r{i}", "communicationtype": "EMAIL"}
            for i in range(3)
        ]
        + [{"createdmonth": MAR, "nhsnumberhash": "r3", "communicationtype": "SMS"}],
    )
    rows = run("monthly_messages_per_recipient", delivered_messages=quarter)
    # 1 / 4 = 0.25: half up gives 0.3 (half to even would give 0.2).
    assert pick(rows, "communicationtype", "averagemessagesperecipient") == [
        ("EMAIL", 0.8),
        ("SMS", 0.3),
    ]


def test_monthly_recipient_with_five_or_more_messages() -> None:
    rows = run("monthly_recipient_with_more_than_five_messages", delivered_messages=delivered())
    assert pick(
        rows,
        "createdmonth",
        "monthlytotalmessages",
        "nhsnumberhash",
        "clientid",
        "appdelivered",
        "emaildelivered",
        "smsdelivered",
        "letterdelivered",
    ) == [(MAR, 5, "r1", "a", 2, 0, 2, 0), (MAR, 5, "r1", "b", 1, 0, 0, 0)]


def test_monthly_recipients_distribution() -> None:
    rows = run("monthly_recipients_distribution", delivered_messages=delivered())
    assert pick(rows, "createdmonth", "monthlytotalmessages", "recipientcount") == [
        (MAR, 1, 2),
        (MAR, 5, 1),
        (APR, 1, 1),
    ]


def test_monthly_recipients_distribution_by_integrator() -> None:
    rows = run("monthly_recipients_distribution_by_integrator", delivered_messages=delivered())
    assert pick(rows, "createdmonth", "clientid", "messagedeliveredcount", "recipientcount") == [
        (MAR, "a", 1, 2),
        (MAR, "a", 4, 1),
        (MAR, "b", 1, 1),
        (APR, "a", 1, 1),
    ]


def test_dates_run_from_2023_to_the_end_of_the_as_of_year() -> None:
    rows = run("dates")
    assert len(rows) == 1461
    assert rows[0] == {"datevalue": date(2023, 1, 1), "year": 2023, "month": 1, "day": 1}
    assert rows[-1] == {"datevalue": date(2026, 12, 31), "year": 2026, "month": 12, "day": 31}


# -- latency ------------------------------------------------------------------------------


def test_raw_latency_keeps_office_hours_sends_of_the_last_three_months() -> None:
    def request(rid: str, created: datetime, send: datetime) -> tuple[dict, dict]:
        item = {
            "requestitemid": f"i-{rid}",
            "clientid": "a",
            "requestid": rid,
            "createdtime": created,
        }
        plan = {
            "requestitemplanid": f"p-{rid}",
            "clientid": "a",
            "requestid": rid,
            "requestitemid": f"i-{rid}",
            "campaignid": "c",
            "sendinggroupid": "g",
            "communicationtype": "SMS",
            "channeltype": "primary",
            "ordernumber": 1,
            "createdtime": created,
            "sendtime": send,
        }
        return item, plan

    wed = "2026-04-01"  # London is UTC+1
    r1_item, r1_first = request("r1", at(wed, "09:00:00"), at(wed, "09:10:00"))
    r1_late_item = {**r1_item, "requestitemid": "i-r1b", "createdtime": at(wed, "09:05:00")}
    r1_first = {**r1_first, "completedtime": at(wed, "09:20:00")}
    r1_fallback = {
        **r1_first,
        "requestitemplanid": "p-r1-2",
        "ordernumber": 2,
        "communicationtype": "EMAIL",
        "completedtime": None,
        "sendtime": at(wed, "09:25:00"),
    }
    r1_unsent = {
        **r1_first,
        "requestitemplanid": "p-r1b",
        "requestitemid": "i-r1b",
        "sendtime": None,
    }
    cases = [
        request("r2", at("2026-04-04", "10:00:00"), at("2026-04-04", "10:01:00")),  # Saturday
        request("r3", at("2026-04-02", "16:57:00"), at("2026-04-02", "17:00:00")),  # 17:57 BST
        request("r4", at("2026-04-02", "16:59:00"), at("2026-04-02", "17:00:00")),  # 17:59 BST
        request("r5", at("2026-04-02", "06:59:00"), at("2026-04-02", "07:00:00")),  # 07:59 BST
        request("r6", at("2026-01-05", "12:00:00"), at("2026-01-05", "12:01:00")),  # too old
    ]
    items = [r1_item, r1_late_item, *(c[0] for c in cases)]
    plans = [r1_first, r1_fallback, r1_unsent, *(c[1] for c in cases)]
    rows = run(
        "raw_latency_3m",
        request_item_status=table("request_item_status", items),
        request_item_plan_status=table("request_item_plan_status", plans),
    )
    assert pick(rows, "communicationtype", "starttime", "endtime") == [
        ("EMAIL", at(wed, "09:20:00"), at(wed, "09:25:00")),  # from the first channel's end
        ("SMS", at(wed, "09:00:00"), at(wed, "09:10:00")),  # from the request's first item
        ("SMS", at("2026-04-02", "16:57:00"), at("2026-04-02", "17:00:00")),
    ]
    assert {(r["clientid"], r["campaignid"], r["sendinggroupid"]) for r in rows} == {
        ("a", "c", "g")
    }


def test_latency_percentiles_are_nearest_rank_over_the_last_two_months() -> None:
    start = at("2026-04-01", "09:00:00")
    raw = [
        {
            "clientid": "a",
            "campaignid": "c",
            "communicationtype": "SMS",
            "starttime": start,
            "endtime": datetime.fromtimestamp(start.timestamp() + seconds, UTC),
        }
        for seconds in (60, 120, 180, 240)
    ] + [
        {
            "clientid": "a",
            "campaignid": "c",
            "communicationtype": "SMS",
            "starttime": at("2026-02-05", "09:00:00"),
            "endtime": at("2026-02-05", "23:00:00"),
        }
    ]
    rows = run("latency_percentiles", raw_latency_3m=table("raw_latency_3m", raw))
    assert len(rows) == 25
    by_percentile = {r["percentile"]: r["latency"] for r in rows}
    assert list(by_percentile)[:3] == [0.1, 5.0, 10.0]
    assert list(by_percentile)[-2:] == [99.0, 99.9]
    assert (by_percentile[0.1], by_percentile[25.0], by_percentile[50.0]) == (60.0, 60.0, 120.0)
    assert (by_percentile[75.0], by_percentile[96.0], by_percentile[99.9]) == (180.0, 240.0, 240.0)


# -- letters ------------------------------------------------------------------------------


def letters() -> pa.Table:
    def letter(supplier: str, day: str, status: str = "DELIVERED") -> dict[str, Any]:
        return {
            "clientid": "a",
            "campaignid": "c",
            "supplier": supplier,
            "status": status,
            "communicationtype": "LETTER",
            "sendtime": at(day, "15:00:00"),
        }

    return table(
        "request_item_plan_status",
        [
            letter("MBA", "2026-04-02"),  # Thursday: +4 days, Monday 6 April (ISO week 15)
            letter("MBA", "2026-03-31"),  # Tuesday: +2 days, Thursday 2 April (week 14)
            letter("PRECISIONPROCO", "2026-02-28"),  # Saturday: Monday 2 March (week 10)
            letter("SYNERTEC", "2026-03-29"),  # Sunday: Monday 30 March (week 14)
            letter("OTHER", "2026-03-28"),  # Saturday, unmoved (week 13)
            letter("OTHER", "2027-01-01"),  # Friday 1 January 2027: ISO week 53 of 2026
            letter("OTHER", "2026-03-27", status="FAILED"),
            {**letter("OTHER", "2026-03-27"), "communicationtype": "SMS"},
            {**letter("OTHER", "2026-03-27"), "sendtime": None},
        ],
    )


def test_letters_invoice_units_monthly() -> None:
    rows = run("letters_invoice_units_monthly", request_item_plan_status=letters())
    assert pick(rows, "supplier", "invoiceyear", "invoicemonth", "unitcount") == [
        ("MBA", 2026, 4, 2),
        ("OTHER", 2026, 3, 1),
        ("OTHER", 2027, 1, 1),
        ("PRECISIONPROCO", 2026, 3, 1),
        ("SYNERTEC", 2026, 3, 1),
    ]


def test_letters_invoice_units_weekly() -> None:
    rows = run("letters_invoice_units_weekly", request_item_plan_status=letters())
    assert pick(rows, "supplier", "invoiceyear", "invoiceweek", "unitcount") == [
        ("MBA", 2026, 14, 1),
        ("MBA", 2026, 15, 1),
        ("OTHER", 2026, 13, 1),
        ("OTHER", 2026, 53, 1),
        ("PRECISIONPROCO", 2026, 10, 1),
        ("SYNERTEC", 2026, 14, 1),
    ]


# -- the summaries' _all views ------------------------------------------------------------


def test_summary_all_views_take_batch_rows_for_batch_clients_and_day_rows_otherwise() -> None:
    day = date(2026, 4, 1)
    for view, daily, batch in (
        (
            "request_item_status_summary_all",
            "request_item_status_summary",
            "request_item_status_summary_batch",
        ),
        (
            "request_item_plan_completed_summary_all",
            "request_item_plan_completed_summary",
            "request_item_plan_completed_summary_batch",
        ),
    ):
        count = "requestedcount" if "status_summary" in view else "requestitemcount"
        rows = run(
            view,
            **{
                daily: table(
                    daily,
                    [
                        {"clientid": "a", "createddate": day, count: 3},
                        {"clientid": "b", "createddate": day, count: 5},
                    ],
                ),
                batch: table(
                    batch,
                    [
                        {
                            "clientid": "b",
                            "requestid": "req-1",
                            "requestrefid": "ref-1",
                            "createddate": day,
                            count: 2,
                        },
                    ],
                ),
            },
        )
        assert pick(rows, "clientid", "requestid", "requestrefid", count) == [
            ("a", None, None, 3),
            ("b", "req-1", "ref-1", 2),
        ], view


def test_email_filter_hides_email_only_sending_groups_of_the_listed_clients() -> None:
    summary = table(
        "request_item_status_summary_all",
        [
            {"clientid": "a", "sendinggroupid": "email-only", "requestedcount": 1},
            {"clientid": "a", "sendinggroupid": "mixed", "requestedcount": 2},
            {"clientid": "a", "sendinggroupid": None, "requestedcount": 3},
            {"clientid": "b", "sendinggroupid": "email-only", "requestedcount": 4},
        ],
    )
    plans = table(
        "request_item_plan_completed_summary_all",
        [
            {"clientid": "a", "sendinggroupid": "email-only", "communicationtype": "EMAIL"},
            {"clientid": "a", "sendinggroupid": "mixed", "communicationtype": "EMAIL"},
            {"clientid": "a", "sendinggroupid": "mixed", "communicationtype": "SMS"},
            {"clientid": "b", "sendinggroupid": "email-only", "communicationtype": "EMAIL"},
        ],
    )
    tables = {
        "request_item_status_summary_all": summary,
        "request_item_plan_completed_summary_all": plans,
    }
    view = "request_item_status_summary_all_email_filter"
    filtered = ViewParameters(as_of_date=AS_OF, email_filter_client_ids=("a",))
    assert pick(run(view, filtered, **tables), "requestedcount") == [(2,), (3,), (4,)]
    assert pick(run(view, **tables), "requestedcount") == [(1,), (2,), (3,), (4,)]


def test_view_inputs_are_staging_tables_or_earlier_views() -> None:
    seen: set[str] = set()
    for spec in VIEWS:
        assert all(r in REPORTING_COLUMNS or r in seen for r in spec.reads), spec.name
        seen.add(spec.name)
