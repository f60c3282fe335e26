"""Watchdog checks: thresholds per channel and state, severity, and the metrics time series."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from assets.reporting.settings import WatchdogSettings
from assets.reporting.watchdogs import (
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

LIMITS = WatchdogSettings()
BY_NAME = {w.name: w for w in WATCHDOGS}


def ago(hours: float) -> timedelta:
    return timedelta(hours=hours)


def staged(tmp_path: Path, records: list[dict]) -> Lake:
    lake = Lake.at(tmp_path / "lake")
    lake.land("records", lines(records))
    lake.cycle(NOW, window_days=120)
    return lake


def flagged(lake: Lake, name: str, limits: WatchdogSettings = LIMITS) -> dict[tuple, int]:
    watchdog = BY_NAME[name]
    counts = evaluate_watchdog(watchdog, lake.staging(watchdog.table), limits=limits, now=NOW)
    return {(r["clientid"], r["campaignid"]): r["flagged"] for r in counts.to_pylist()}


def created_plan(name: str, hours: float, status: str = "SENDING", **kwargs) -> dict:
    created = NOW - ago(hours)
    return plan(name, created + timedelta(minutes=1), status, created=created, **kwargs)


def test_overdue_plans_use_per_channel_limits_for_the_first_channel(tmp_path: Path):
    lake = staged(
        tmp_path,
        [
            created_plan("sms-fresh", 95, channel="SMS"),  # limit 96 h
            created_plan("sms-late", 97, channel="SMS"),
            created_plan("app-late", 97, channel="NHSAPP"),
            created_plan("letter-fresh", 100, channel="LETTER"),  # limit 168 h
            created_plan("letter-late", 170, channel="LETTER"),
            created_plan("fallback-fresh", 200, channel="SMS", order=2),  # limit 240 h
            created_plan("fallback-late", 250, channel="SMS", order=2),
            created_plan("anything-late", 340, channel="CARRIER_PIGEON"),  # limit 336 h
            created_plan("done", 400, "DELIVERED", channel="SMS"),
            created_plan("skipped", 400, "SKIPPED", channel="EMAIL"),
            created_plan("too-old", 24 * 100, channel="SMS"),  # outside the 90-day lookback
            created_plan("other-client", 97, channel="EMAIL", client="client-b"),
        ],
    )
    assert flagged(lake, "overdue_request_item_plans") == {
        ("client-a", "campaign-1"): 5,
        ("client-b", "campaign-1"): 1,
    }


def test_overdue_plan_limits_are_configurable(tmp_path: Path):
    lake = staged(tmp_path, [created_plan("sms", 2, channel="SMS")])
    assert flagged(lake, "overdue_request_item_plans") == {("client-a", "campaign-1"): 0}
    tight = LIMITS.model_copy(update={"plan_overdue_hours": {"SMS": 1}})
    assert flagged(lake, "overdue_request_item_plans", tight) == {("client-a", "campaign-1"): 1}


def created_item(name: str, hours: float, status: str, **kwargs) -> dict:
    created = NOW - ago(hours)
    completed = created + ago(1) if status in ("DELIVERED", "FAILED") else None
    return item(name, created + ago(1), status, created=created, completed=completed, **kwargs)


def test_overdue_items_and_requests_after_two_weeks(tmp_path: Path):
    lake = staged(
        tmp_path,
        [
            created_item("i-late", 337, "SENDING", request="r-late"),
            created_item("i-late-done", 337, "DELIVERED", request="r-late"),
            created_item("i-fresh", 335, "SENDING", request="r-fresh"),
            created_item("i-done", 400, "FAILED", request="r-done"),
            created_item("i-other", 400, "ENRICHED", request="r-other", campaign=None),
        ],
    )
    assert flagged(lake, "overdue_request_items") == {
        ("client-a", "campaign-1"): 1,
        ("client-a", None): 1,
    }
    assert flagged(lake, "overdue_requests") == {
        ("client-a", "campaign-1"): 1,
        ("client-a", None): 1,
    }


def test_stuck_items_by_state(tmp_path: Path):
    lake = staged(
        tmp_path,
        [
            created_item("pending-stuck", 49, "PENDING_ENRICHMENT"),  # limit 48 h
            created_item("pending-ok", 47, "PENDING_ENRICHMENT"),
            created_item("enriched-stuck", 145, "ENRICHED"),  # limit 144 h
            created_item("enriched-ok", 143, "ENRICHED"),
            created_item("sending", 200, "SENDING"),  # overdue perhaps, but not stuck
        ],
    )
    assert flagged(lake, "stuck_request_items") == {("client-a", "campaign-1"): 2}


def test_watchdog_fails_with_error_severity_at_the_threshold(tmp_path: Path):
    lake = staged(tmp_path, [created_item(f"s{n}", 60, "PENDING_ENRICHMENT") for n in range(3)])
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
    lake = staged(tmp_path, [created_item("s", 60, "PENDING_ENRICHMENT")])
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
        [created_item("stuck", 60, "PENDING_ENRICHMENT"), created_plan("p", 2, channel="SMS")],
    )
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
    }
    series = lake.delta.read(WATCHDOG_METRICS)
    assert set(series["watchdog"].to_pylist()) == set(outcomes)
    assert set(series["run_id"].to_pylist()) == {result.run_id}


def check_ops(defs: dg.Definitions) -> list[str]:
    job = defs.resolve_job_def("w")
    return [node.name for node in job.graph.nodes]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_watchdog_on_an_empty_staging_table_flags_nothing(tmp_path: Path, name: str):
    lake = staged(tmp_path, [])
    assert flagged(lake, name) == {}
