"""Inputs for every reporting statement, built the way the DuckDB path builds them.

A world is a transaction history and everything the DuckDB path derives from it: the
pass-1 projections (``staging.project``), the pass-2 aggregations and the views in
their dependency order, plus the watchdogs' threshold table. Each statement is then
run on both engines over the same world (``test_reporting_spark_sql.py``).

- ``mixed``: the demo generator's CDC lines (``flowehr demo-data``), parsed as
  ingestion parses them, over twelve days across the start of British Summer Time
  (29 March 2026), with re-delivered (duplicate) lines; beside them hand-made records
  for what the engines could disagree on: NULL dimensions, keys and lists, ties and
  duplicate records, instants either side of both BST changeovers and of a London
  working day, weekend letters at the turn of an ISO year, SMS nudges, templates only
  in ``_extra``. One world rather than two halves the Spark jobs.
- ``empty``: every input empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from flowehr_pipelines.synthetic.cdc import write_cdc_landing
from transforms.cdc import TRANSACTION_HISTORY_SCHEMA, parse_lines
from transforms.reporting import SqlParam, run_query
from transforms.reporting.dictionary import REPORTING_COLUMNS, arrow_schema
from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS, project
from transforms.reporting.views import QUERIES, VIEWS, ViewParameters
from transforms.reporting.views.compute import compute_view

LONDON = "Europe/London"
WINDOW_START = date(2026, 1, 1)


@dataclass
class World:
    """One set of inputs: every table by name, and the values of the cycle."""

    name: str
    tables: dict[str, pa.Table]
    view_parameters: ViewParameters
    report_day: date  # a London day, for completed_comms_report
    latency_day: date  # "today" of the degraded-latency watchdog

    @property
    def as_of(self) -> datetime:
        return datetime.combine(self.view_parameters.as_of_date, time.min, UTC)

    def sql_params(self, name: str) -> dict[str, SqlParam]:
        """The parameters of a named ``.sql`` file, as the assets would give them."""
        as_of, days = self.as_of, timedelta(days=1)
        start = datetime.combine(self.report_day, time.min, ZoneInfo(LONDON)).astimezone(UTC)
        end = datetime.combine(self.report_day + days, time.min, ZoneInfo(LONDON))
        params: dict[str, dict[str, SqlParam]] = {
            "completed_batches": {
                "completed_since": as_of - 40 * days,
                "settled_before": as_of - timedelta(minutes=30),
                "created_since": as_of - 60 * days,
            },
            "completed_comms_report": {"day_start": start, "day_end": end.astimezone(UTC)},
            "watchdog_overdue_request_item_plans": {
                "lookback_start": as_of - 30 * days,
                "fallback_overdue_before": as_of - 3 * days,
                "any_overdue_before": as_of - 7 * days,
            },
            "watchdog_overdue_request_items": {
                "overdue_before_date": (as_of - 5 * days).date(),
                "lookback_start_date": (as_of - 30 * days).date(),
            },
            "watchdog_overdue_requests": {
                "overdue_before_date": (as_of - 5 * days).date(),
                "lookback_start_date": (as_of - 30 * days).date(),
            },
            "watchdog_stuck_request_items": {
                "lookback_start": as_of - 30 * days,
                "enriched_stuck_before": as_of - 2 * days,
                "pending_stuck_before": as_of - days,
            },
            "watchdog_degraded_latency": {"today": self.latency_day, "factor": 1.0},
        }
        return params.get(name, {})


def plan_thresholds(as_of: datetime) -> pa.Table:
    channels = ["EMAIL", "LETTER", "NHSAPP", "SMS"]
    return pa.table(
        {
            "communicationtype": pa.array(channels, pa.string()),
            "overdue_before": pa.array(
                [as_of - timedelta(days=d) for d in (2, 10, 1, 3)], pa.timestamp("us", tz="UTC")
            ),
        }
    )


def derive(name: str, history: pa.Table, parameters: ViewParameters, **days: date) -> World:
    """A world from a transaction history: what the DuckDB path makes of it."""
    tables: dict[str, pa.Table] = {"transaction_history": history}
    for spec in PROJECTIONS:
        tables[spec.table] = project(
            spec, history, pseudonymise=lambda v: f"k{len(v)}{v[::-1][:16]}", tz=LONDON
        )
    for agg in AGGREGATIONS:
        summary = run_query(
            agg.sql(), {agg.source: tables[agg.source]}, {"window_start_date": WINDOW_START}
        )
        tables[agg.table] = summary.cast(arrow_schema(REPORTING_COLUMNS[agg.table]))
    for view in (*VIEWS, *QUERIES):
        tables[view.name] = compute_view(view, tables, parameters)
    as_of = datetime.combine(parameters.as_of_date, time.min, UTC)
    tables["plan_thresholds"] = plan_thresholds(as_of)
    return World(name, tables, parameters, days["report_day"], days["latency_day"])


def synthetic_history(directory: Path) -> pa.Table:
    """Twelve days of demo CDC from 24 March 2026, parsed line by line as ingestion does."""
    write_cdc_landing(
        directory, days=12, events_per_day=60, start_date=date(2026, 3, 24), seed=7, clients=3
    )
    now = datetime(2026, 4, 20, tzinfo=UTC)
    parts = [
        parse_lines(
            path.read_bytes().splitlines(),
            source_file=path.relative_to(directory).as_posix(),
            now=now,
            quarantined_at=now,
        ).records_table()
        for path in sorted(directory.rglob("*.jsonl"))
    ]
    return pa.concat_tables(parts)


def empty_world() -> World:
    return derive(
        "empty",
        TRANSACTION_HISTORY_SCHEMA.empty_table(),
        ViewParameters(date(2026, 4, 6), sms_nudge_client_id="nudge"),
        report_day=date(2026, 3, 29),
        latency_day=date(2026, 4, 2),
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _record(kind: str, key: str, at: str, status: str | None, **fields: Any) -> dict[str, Any]:
    moment = utc(at)
    record: dict[str, Any] = {
        "sk": f"{kind}#{key}",
        "timestamp": int(moment.timestamp() * 1000),
        "status": status,
        "clientid": "client-a",
        "campaignid": "camp-1",
        "requestid": "req-1",
        "createddate": moment,
        "_record_hash": f"h-{key}-{at}-{status}",
        **fields,
    }
    if kind == "REQUEST_ITEM":
        record["requestitemid"] = key
    return record


def item(key: str, at: str, status: str | None, **fields: Any) -> dict[str, Any]:
    return _record("REQUEST_ITEM", key, at, status, **fields)


def plan(key: str, item_id: str, at: str, status: str | None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("communicationtype", "SMS")
    fields.setdefault("channeltype", "primary")
    fields.setdefault("ordernumber", 1)
    return _record(
        "REQUEST_ITEM_PLAN", key, at, status, requestitemid=item_id, requestitemplanid=key, **fields
    )


def edge_records() -> list[dict[str, Any]]:
    """Records for each way the engines could part (see the module docstring)."""
    done = {"completedcommunicationtypes": ["SMS"], "nhsnumber": "9434765919"}
    rows = [
        # BST starts 2026-03-29 01:00 UTC: the London day and hour move at the changeover.
        item(
            "i-gmt",
            "2026-03-29 00:30:00",
            "DELIVERED",
            completeddate=utc("2026-03-29 00:59:59.999"),
            **done,
        ),
        item(
            "i-bst",
            "2026-03-29 01:00:00",
            "DELIVERED",
            completeddate=utc("2026-03-29 23:00:00"),
            **done,
        ),
        item(
            "i-eve",
            "2026-03-28 23:59:59.999",
            "FAILED",
            completeddate=utc("2026-03-29 22:59:59.999"),
            failedreason="PERMANENT x",
        ),
        # BST ends 2026-10-25 01:00 UTC.
        item(
            "i-oct1",
            "2026-10-25 00:30:00",
            "DELIVERED",
            completeddate=utc("2026-10-25 00:59:00"),
            **done,
        ),
        item("i-oct2", "2026-10-25 01:30:00", "FAILED", completeddate=utc("2026-10-25 01:30:00")),
        # NULL dimensions, lists and times; an item with no client; no status at all.
        item(
            "i-null",
            "2026-03-30 09:00:00",
            "DELIVERED",
            campaignid=None,
            createddate=None,
            completedcommunicationtypes=None,
            nhsnumber=None,
        ),
        item("i-noclient", "2026-03-30 09:00:00", "PENDING_ENRICHMENT", clientid=None),
        item("i-nostatus", "2026-03-30 09:00:00", None, requestid=None),
        item("i-stuck", "2026-03-20 09:00:00", "ENRICHED", requestid="req-2"),
        # Ties: same timestamp, terminal wins; then the greater hash; and a duplicate record.
        item("i-tie", "2026-03-31 12:00:00", "SENDING", clientname="Zed"),
        item(
            "i-tie",
            "2026-03-31 12:00:00",
            "DELIVERED",
            clientname="Abe",
            completedcommunicationtypes=["EMAIL", "EMAIL", "NHSAPP"],
            nhsnumber="9434765919",
        ),
        item(
            "i-tie",
            "2026-03-31 12:00:00",
            "DELIVERED",
            clientname="Abe",
            completedcommunicationtypes=["EMAIL", "EMAIL", "NHSAPP"],
            nhsnumber="9434765919",
        ),
        # The SMS nudge client's item, pointing at i-bst's app plan; one with empty parts.
        item(
            "n-1",
            "2026-03-30 07:00:00",
            "DELIVERED",
            clientid="nudge",
            billingref="client-a|camp-1|bill-9",
            requestitemrefid="i-bst_p-app",
            **done,
        ),
        item(
            "n-2",
            "2026-03-30 07:00:00",
            "DELIVERED",
            clientid="nudge",
            billingref="client-b||",
            requestitemrefid="i-x",
        ),
        # Plans: a first channel just inside and just outside a London working day.
        plan(
            "p-in",
            "i-bst",
            "2026-03-30 07:00:00",
            "DELIVERED",
            datesent=utc("2026-03-30 07:05:00"),
            completeddate=utc("2026-03-30 07:06:00"),
        ),
        plan(
            "p-early",
            "i-gmt",
            "2026-03-27 07:59:00",
            "FAILED",
            datesent=utc("2026-03-27 08:01:00"),
            completeddate=utc("2026-03-27 08:01:00"),
            failedreason="TEMPORARY_FAILURE",
        ),
        plan(
            "p-app",
            "i-bst",
            "2026-03-30 07:00:00",
            "DELIVERED",
            communicationtype="NHSAPP",
            ordernumber=2,
            channeltype="primary",
            datesent=utc("2026-03-30 08:00:00"),
            completeddate=utc("2026-03-30 08:30:00"),
        ),
        plan(
            "p-fall",
            "i-bst",
            "2026-03-30 07:00:00",
            "SKIPPED",
            communicationtype="EMAIL",
            ordernumber=3,
            datesent=utc("2026-03-30 08:31:00"),
            completeddate=utc("2026-03-30 08:32:00"),
        ),
        plan(
            "p-null",
            "i-null",
            "2026-03-30 09:00:00",
            None,
            communicationtype=None,
            ordernumber=None,
            createddate=None,
        ),
        plan("p-late", "i-stuck", "2026-03-20 09:00:00", "SENDING", ordernumber=2),
        plan(
            "n-p1",
            "n-1",
            "2026-03-30 07:00:00",
            "DELIVERED",
            clientid="nudge",
            datesent=utc("2026-03-30 07:00:10"),
            completeddate=utc("2026-03-30 07:00:30"),
        ),
        plan(
            "p-email-ok",
            "i-tie",
            "2026-03-31 12:00:00",
            "DELIVERED",
            communicationtype="EMAIL",
            datesent=utc("2026-03-31 12:00:00"),
        ),
        # A template named only per supplier in _extra.
        plan(
            "p-extra",
            "i-oct1",
            "2026-10-25 00:30:00",
            "DELIVERED",
            supplier="MBA",
            _extra=json.dumps({"templates": {"suppliers": {"mba": "tmpl-9"}}}),
        ),
    ]
    # Letters sent each day from Monday 28 December 2026 to Sunday 3 January 2027 (ISO
    # week 53 of 2026 ends on the 3rd), by each supplier rule.
    for offset in range(7):
        sent = datetime(2026, 12, 28, 23, 59, tzinfo=UTC) + timedelta(days=offset)
        for supplier in ("MBA", "SYNERTEC", "OTHER"):
            rows.append(
                plan(
                    f"l-{offset}-{supplier}",
                    "i-oct2",
                    "2026-10-25 01:30:00",
                    "DELIVERED",
                    communicationtype="LETTER",
                    supplier=supplier,
                    datesent=sent,
                )
            )
    return rows


def mixed_world(directory: Path) -> World:
    """The synthetic history with the edge records beside it (one world: half the jobs)."""
    edges = pa.Table.from_pylist(edge_records(), schema=TRANSACTION_HISTORY_SCHEMA)
    return derive(
        "mixed",
        pa.concat_tables([synthetic_history(directory), edges]),
        ViewParameters(
            date(2026, 4, 6), sms_nudge_client_id="nudge", email_filter_client_ids=("client-a",)
        ),
        report_day=date(2026, 3, 29),
        latency_day=date(2026, 3, 30),
    )
