"""Watchdog checks: thresholds per channel and state, severity, and the metrics time series."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.reporting.settings import WatchdogSettings
from assets.reporting.views import refresh_view
from assets.reporting.watchdogs import (
    RAW_LATENCY_KEY,
    WATCHDOG_CHECK_KEYS,
    WATCHDOG_METRICS,
    WATCHDOGS,
    build_defs,
    evaluate_watchdog,
    record_watchdog_metrics,
    watchdog_result,
)
from flowehr_pipelines.config import load_settings
from tests.assets.reporting_world import NOW, Lake, item, lines, plan
from transforms.reporting.dictionary import arrow_schema
from transforms.reporting.views import VIEW_COLUMNS, VIEWS_BY_NAME, ViewParameters

LIMITS = WatchdogSettings()
BY_NAME = {w.name: w for w in WATCHDOGS}


MIDNIGHT = NOW.replace(hour=0, minute=0)  # limits count whole days back from here
MINUTE = timedelta(minutes=1)


def days_before(days: int, plus: timedelta = timedelta()) -> datetime:
    return MIDNIGHT - timedelta(days=days) + plus


def staged(tmp_path: Path, records: list[dict]) -> Lake:
    lake = Lake.at(tmp_path / "lake")
    lake.land("records", lines(records))
    lake.cycle(NOW, window_days=120)
    return lake


def latency_view(lake: Lake) -> None:
    """Build reporting/views/raw_latency_3m, the table degraded_latency reads."""
    refresh_view(
        VIEWS_BY_NAME["raw_latency_3m"], delta=lake.delta, parameters=ViewParameters(NOW.date())
    )


def flagged(lake: Lake, name: str, limits: WatchdogSettings = LIMITS) -> dict[tuple, int]:
    watchdog = BY_NAME[name]
    if watchdog.asset == RAW_LATENCY_KEY:
        latency_view(lake)
    table = lake.delta.read(watchdog.asset.path)
    counts = evaluate_watchdog(watchdog, table, limits=limits, now=NOW)
    return {(r["clientid"], r["campaignid"]): r["flagged"] for r in counts.to_pylist()}


def created_plan(name: str, created: datetime, status: str = "SENDING", **kwargs) -> dict:
    return plan(name, created + MINUTE, status, created=created, **kwargs)


def test_overdue_plans_use_per_channel_limits_for_the_first_channel(tmp_path: Path):
    lake = staged(
        tmp_path,
        [
            # Four days before today's midnight: a minute after it is not yet overdue,
            # although it is more than 96 hours old by now (12:00).
            created_plan("sms-fresh", days_before(4, MINUTE), channel="SMS"),
            created_plan("sms-late", days_before(4, -MINUTE), channel="SMS"),
            created_plan("app-late", days_before(4, -MINUTE), channel="NHSAPP"),
            created_plan("letter-fresh", days_before(6), channel="LETTER"),  # limit 7 days
            created_plan("letter-late", days_before(7, -MINUTE), channel="LETTER"),
            created_plan("second-fresh", days_before(9), channel="SMS", order=2),  # 10 days
            created_plan("second-late", days_before(10, -MINUTE), channel="SMS", order=2),
            # A third channel has no limit of its own, only the 14-day one.
            created_plan("third-fresh", days_before(13), channel="LETTER", order=3),
            created_plan("third-late", days_before(14, -MINUTE), channel="LETTER", order=3),
            created_plan("anything-late", days_before(15), channel="CARRIER_PIGEON"),
            created_plan("done", days_before(20), "DELIVERED", channel="SMS"),
            created_plan("skipped", days_before(20), "SKIPPED", channel="EMAIL"),
            created_plan("too-old", days_before(91), channel="SMS"),  # outside the lookback
            created_plan("other-client", days_before(5), channel="EMAIL", client="client-b"),
            created_plan("no-campaign", days_before(5), channel="EMAIL", campaign=None),
        ],
    )
    assert flagged(lake, "overdue_request_item_plans") == {
        ("client-a", "campaign-1"): 6,
        ("client-a", "N/A"): 1,
        ("client-b", "campaign-1"): 1,
    }


def test_overdue_plan_limits_are_configurable(tmp_path: Path):
    lake = staged(tmp_path, [created_plan("sms", days_before(1, -MINUTE), channel="SMS")])
    assert flagged(lake, "overdue_request_item_plans") == {}
    tight = LIMITS.model_copy(update={"plan_overdue_days": {"SMS": 1}})
    assert flagged(lake, "overdue_request_item_plans", tight) == {("client-a", "campaign-1"): 1}


def created_item(name: str, created: datetime, status: str, **kwargs) -> dict:
    completed = created + MINUTE if status in ("DELIVERED", "FAILED") else None
    return item(name, created + MINUTE, status, created=created, completed=completed, **kwargs)


def test_overdue_items_and_requests_after_two_weeks(tmp_path: Path):
    lake = staged(
        tmp_path,
        [
            created_item("i-late", days_before(15), "SENDING", request="r-late"),
            created_item("i-late-done", days_before(15), "DELIVERED", request="r-late"),
            # The day before the limit's day counts; 14 days back from midnight does not.
            created_item("i-edge", days_before(14, MINUTE), "SENDING", request="r-edge"),
            created_item("i-done", days_before(20), "FAILED", request="r-done"),
            created_item("i-other", days_before(20), "ENRICHED", request="r-other", campaign=None),
        ],
    )
    # Read from the item summary's outstandingcount, as NHS Notify does.
    assert flagged(lake, "overdue_request_items") == {
        ("client-a", "campaign-1"): 1,
        ("client-a", "N/A"): 1,
    }
    assert flagged(lake, "overdue_requests") == {
        ("client-a", "campaign-1"): 1,
        ("client-a", "N/A"): 1,
    }


def test_stuck_items_by_state(tmp_path: Path):
    lake = staged(
        tmp_path,
        [
            created_item("pending-stuck", days_before(2, -MINUTE), "PENDING_ENRICHMENT"),
            created_item("pending-ok", days_before(2, MINUTE), "PENDING_ENRICHMENT"),
            created_item("enriched-stuck", days_before(6, -MINUTE), "ENRICHED"),
            created_item("enriched-ok", days_before(6, MINUTE), "ENRICHED"),
            created_item("sending", days_before(8), "SENDING"),  # overdue perhaps, not stuck
        ],
    )
    assert flagged(lake, "stuck_request_items") == {("client-a", "campaign-1"): 2}


def test_watchdog_fails_with_error_severity_at_the_threshold(tmp_path: Path):
    lake = staged(
        tmp_path, [created_item(f"s{n}", days_before(3), "PENDING_ENRICHMENT") for n in range(3)]
    )
    watchdog = BY_NAME["stuck_request_items"]
    counts = evaluate_watchdog(
        watchdog, lake.staging("request_item_status"), limits=LIMITS, now=NOW
    )
    for error_at, passed in ((1, False), (3, False), (4, True)):
        limits = LIMITS.model_copy(update={"error_at": error_at})
        result = watchdog_result(watchdog, counts, limits=limits, now=NOW)
        assert result.passed is passed
        assert result.severity == dg.AssetCheckSeverity.ERROR
        assert result.metadata["flagged"].value == 3
    groups = result.metadata["by_client_campaign"].value
    assert groups == [{"clientid": "client-a", "campaignid": "campaign-1", "count": 3}]


def test_watchdog_metrics_append_once_per_run(tmp_path: Path):
    lake = staged(tmp_path, [created_item("s", days_before(3), "PENDING_ENRICHMENT")])
    watchdog = BY_NAME["stuck_request_items"]
    counts = evaluate_watchdog(
        watchdog, lake.staging("request_item_status"), limits=LIMITS, now=NOW
    )

    def record(run_id: str) -> bool:
        return record_watchdog_metrics(
            lake.delta, watchdog, counts, evaluated_at=NOW, error_at=1, run_id=run_id
        )

    assert record("run-1")
    assert not record("run-1")
    assert record("run-2")
    series = lake.delta.read(WATCHDOG_METRICS).to_pylist()
    assert sorted((r["run_id"], r["flagged"]) for r in series) == [("run-1", 1), ("run-2", 1)]


def test_watchdog_job_evaluates_every_check_and_records_the_time_series(tmp_path: Path):
    lake = staged(
        tmp_path,
        [
            created_item("stuck", days_before(3), "PENDING_ENRICHMENT"),
            created_plan("p", NOW - timedelta(hours=2), channel="SMS"),
        ],
    )
    latency_view(lake)
    defs = dg.Definitions.merge(
        build_defs(load_settings()),
        dg.Definitions(
            jobs=[
                dg.define_asset_job("w", selection=dg.AssetSelection.checks(*WATCHDOG_CHECK_KEYS))
            ],
            resources={"delta": lake.delta},
        ),
    )
    as_of = {"config": {"as_of": NOW.isoformat()}}
    result = defs.resolve_job_def("w").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {op: as_of for op in check_ops(defs)}},
    )
    assert result.success  # a failed watchdog is a failed check, not a failed run
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert outcomes == {
        "overdue_request_item_plans": True,
        "overdue_request_items": True,
        "overdue_requests": True,
        "stuck_request_items": False,
        "degraded_latency": True,
    }
    series = lake.delta.read(WATCHDOG_METRICS)
    # A point per group in scope; a watchdog with no group in scope adds none (as the
    # NHS Notify metrics, which are put per row of the query).
    assert set(series["watchdog"].to_pylist()) == {"stuck_request_items"}
    assert set(series["run_id"].to_pylist()) == {result.run_id}


def check_ops(defs: dg.Definitions) -> list[str]:
    job = defs.resolve_job_def("w")
    return [node.name for node in job.graph.nodes]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_watchdog_on_an_empty_staging_table_flags_nothing(tmp_path: Path, name: str):
    lake = staged(tmp_path, [])
    assert flagged(lake, name) == {}


def sends(client: str, campaign: str | None, group: str, channel: str, *pairs) -> list[dict]:
    """raw_latency_3m rows: (sent at, latency in seconds) pairs of one group."""
    return [
        {
            "clientid": client,
            "campaignid": campaign,
            "sendinggroupid": group,
            "communicationtype": channel,
            "starttime": sent - timedelta(seconds=seconds),
            "endtime": sent,
        }
        for sent, seconds in pairs
    ]


MONTH_START = datetime(2026, 3, 6, tzinfo=NOW.tzinfo)  # a calendar month before today
LAST_WEEK = MIDNIGHT - timedelta(days=7)


def latency(rows: list[dict]) -> tuple[pa.Table, dg.AssetCheckResult]:
    schema = arrow_schema(VIEW_COLUMNS["raw_latency_3m"])
    table = pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)
    watchdog = BY_NAME["degraded_latency"]
    counts = evaluate_watchdog(watchdog, table, limits=LIMITS, now=NOW)
    return counts, watchdog_result(watchdog, counts, limits=LIMITS, now=NOW)


def test_degraded_latency_compares_todays_median_with_twice_the_months_p95():
    today = MIDNIGHT + timedelta(hours=1)
    rows = [
        # Month p95 60 s: today's median 121 s is degraded, 120 s is not.
        *sends("client-a", "campaign-1", "g1", "SMS", *[(LAST_WEEK, 60)] * 5,
               (today, 100), (today, 121), (today, 500)),
        *sends("client-a", "campaign-1", "g2", "SMS", *[(LAST_WEEK, 60)] * 5, (today, 120)),
        # No send in the month: nothing to compare with.
        *sends("client-a", "campaign-1", "g1", "EMAIL", (today, 500)),
        *sends("client-b", None, "g1", "SMS", (LAST_WEEK, 30), (today, 61)),
        # The month starts at midnight on 6 March; today at midnight on 6 April.
        *sends("client-c", "campaign-1", "ga", "SMS", (MONTH_START - MINUTE, 10), (today, 100)),
        *sends("client-c", "campaign-1", "gb", "SMS", (MONTH_START, 10), (today, 100)),
        *sends("client-c", "campaign-1", "gc", "SMS", (MIDNIGHT - MINUTE, 10), (MIDNIGHT, 100)),
    ]  # fmt: skip
    counts, result = latency(rows)
    got = {(r["clientid"], r["campaignid"]): r["flagged"] for r in counts.to_pylist()}
    assert got == {
        ("client-a", "campaign-1"): 1,
        ("client-b", "N/A"): 1,
        ("client-c", "campaign-1"): 2,
    }
    assert not result.passed and result.metadata["groups_flagged"].value == 3


def test_degraded_latency_alarms_only_when_several_client_campaigns_degrade_at_once():
    today = MIDNIGHT + timedelta(hours=1)
    one = sends("client-a", "campaign-1", "g1", "SMS", (LAST_WEEK, 10), (today, 100))
    two = sends("client-a", "campaign-1", "g2", "EMAIL", (LAST_WEEK, 10), (today, 100))
    counts, result = latency(one + two)  # two groups, one client and campaign: no alarm
    assert int(pc.sum(counts["flagged"]).as_py()) == 2 and result.passed
    other = sends("client-b", "campaign-9", "g1", "SMS", (LAST_WEEK, 10), (today, 100))
    _, result = latency(one + other)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
