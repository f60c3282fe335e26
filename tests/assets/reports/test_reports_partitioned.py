"""Partitioned canned reports: written once, healed when missing, loud when impossible."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from assets.reporting.staging import REQUEST_ITEM_STATUS
from assets.reports.definitions import build_defs
from assets.reports.partitions import (
    BATCH_PARTITIONS,
    CLIENT_PARTITIONS,
    COMPLETED_BATCH_REPORT,
    COMPLETED_COMMS_REPORT,
    RANGE_END_TAG,
    RANGE_START_TAG,
    comms_partition_key,
    contiguous_ranges,
    parse_comms_partition_key,
)
from assets.reports.planning import plan_batch_reports, plan_comms_reports
from assets.reports.previews import LISTED_REPORT_PATHS, report_metadata
from assets.reports.writing import completed_batch_report_key, completed_comms_report_key
from flowehr_pipelines.config import Settings, load_settings
from tests.assets.reporting_world import Lake, item, lines, plan

LONDON = ZoneInfo("Europe/London")
# 10:00 London on 6 April 2026 (BST): "yesterday" is 5 April.
NOW = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
YESTERDAY = date(2026, 4, 5)


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake.at(Path(settings.lake_root))


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def report_assets(settings: Settings) -> dict[dg.AssetKey, Any]:
    assets = build_defs(settings).assets or []
    return {key: a for a in assets for key in a.keys}  # type: ignore[union-attr]


def refreshed(instance: dg.DagsterInstance, window_start: str = "2026-03-01") -> None:
    """Record that request_item_status was materialised now, as the reporting job would."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(REQUEST_ITEM_STATUS, metadata={"window_start": window_start})
    )


def london(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=LONDON).astimezone(UTC)


def run_plan(
    report_assets: dict, key: dg.AssetKey, plan_: Any, lake: Lake, instance: dg.DagsterInstance
) -> list[dg.ExecuteInProcessResult]:
    results = []
    for request in plan_.run_requests:
        results.append(
            dg.materialize(
                [report_assets[key]],
                instance=instance,
                resources={"delta": lake.delta, "objects": lake.objects},
                tags=dict(request.tags),
                raise_on_error=False,
            )
        )
    return results


def read_csv(lake: Lake, key: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(lake.objects.read_bytes(key).decode())))


# -- completed comms report ------------------------------------------------------------------


@pytest.fixture
def comms_world(lake: Lake, instance: dg.DagsterInstance) -> Lake:
    yesterday_noon = london(YESTERDAY, 12)
    after_midnight = london(YESTERDAY + timedelta(days=1), 0) + timedelta(minutes=30)
    records = [
        item("a1", yesterday_noon, "DELIVERED", client="client-a", completed=yesterday_noon,
             created=yesterday_noon - timedelta(hours=1), completedcommunicationtypes=["SMS"]),
        plan("a1-p", yesterday_noon, "DELIVERED", item_id="a1", client="client-a",
             completed=yesterday_noon, created=yesterday_noon - timedelta(hours=1)),
        # Failed before any channel was tried: reported without a plan.
        item("a2", yesterday_noon, "FAILED", client="client-a", completed=yesterday_noon,
             created=yesterday_noon - timedelta(hours=1)),
        item("a3", yesterday_noon, "SENDING", client="client-a"),
        # Completed at 00:30 London on the 6th = 23:30 UTC on the 5th: not yesterday.
        item("a4", after_midnight, "DELIVERED", client="client-a", completed=after_midnight),
        plan("a4-p", after_midnight, "DELIVERED", item_id="a4", client="client-a",
             completed=after_midnight),
        item("b1", yesterday_noon, "DELIVERED", client="client-b", completed=yesterday_noon),
        plan("b1-p", yesterday_noon, "DELIVERED", item_id="b1", client="client-b",
             completed=yesterday_noon),
    ]  # fmt: skip
    lake.land("items", lines(records))
    lake.cycle(NOW)
    refreshed(instance)
    return lake


def comms_plan(settings: Settings, lake: Lake, instance: dg.DagsterInstance, now: datetime = NOW):
    return plan_comms_reports(
        job_name="j",
        settings=settings,
        instance=instance,
        delta=lake.delta,
        objects=lake.objects,
        now=now,
    )


def test_comms_report_writes_yesterdays_report_per_client(
    settings, comms_world, instance, report_assets
):
    plan_ = comms_plan(settings, comms_world, instance)
    assert instance.get_dynamic_partitions(CLIENT_PARTITIONS.name) == ["client-a", "client-b"]
    [request] = plan_.run_requests
    assert request.tags[RANGE_START_TAG] == "client-a|2026-04-05"
    assert request.tags[RANGE_END_TAG] == "client-b|2026-04-05"
    [result] = run_plan(report_assets, COMPLETED_COMMS_REPORT, plan_, comms_world, instance)
    assert result.success
    a = read_csv(comms_world, completed_comms_report_key("client-a", YESTERDAY))
    b = read_csv(comms_world, completed_comms_report_key("client-b", YESTERDAY))
    assert sorted(r["requestitemid"] for r in a) == ["a1", "a2"]
    assert [r["requestitemid"] for r in b] == ["b1"]
    assert "clientid" not in a[0] and "nhsnumber" not in a[0]
    [event] = result.get_asset_materialization_events()[:1]
    assert event.materialization.metadata["reports_written"].value == 2
    assert instance.get_materialized_partitions(COMPLETED_COMMS_REPORT) == {
        "client-a|2026-04-05",
        "client-b|2026-04-05",
    }


def test_comms_report_never_rewrites_and_heals_a_deleted_report(
    settings, comms_world, instance, report_assets
):
    run_plan(report_assets, COMPLETED_COMMS_REPORT, comms_plan(settings, comms_world, instance),
             comms_world, instance)  # fmt: skip
    key_a = completed_comms_report_key("client-a", YESTERDAY)
    key_b = completed_comms_report_key("client-b", YESTERDAY)
    path_b = Path(comms_world.objects.uri(key_b))
    mtime_b = path_b.stat().st_mtime_ns
    Path(comms_world.objects.uri(key_a)).unlink()
    healing = comms_plan(settings, comms_world, instance)
    [result] = run_plan(report_assets, COMPLETED_COMMS_REPORT, healing, comms_world, instance)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert (metadata["reports_written"].value, metadata["reports_already_present"].value) == (1, 1)
    assert comms_world.objects.exists(key_a)
    assert path_b.stat().st_mtime_ns == mtime_b


def test_comms_report_catches_up_missing_days_since_the_series_began(
    settings, comms_world, instance, report_assets
):
    run_plan(report_assets, COMPLETED_COMMS_REPORT, comms_plan(settings, comms_world, instance),
             comms_world, instance)  # fmt: skip
    # Two days later, nothing ran in between: the 6th is due as well as the 7th.
    later = comms_plan(settings, comms_world, instance, NOW + timedelta(days=2))
    days = sorted({r.tags[RANGE_START_TAG].split("|")[1] for r in later.run_requests})
    assert days == ["2026-04-06", "2026-04-07"]
    results = run_plan(report_assets, COMPLETED_COMMS_REPORT, later, comms_world, instance)
    assert all(r.success for r in results)
    for day in (date(2026, 4, 6), date(2026, 4, 7)):
        for client_id in ("client-a", "client-b"):
            assert comms_world.objects.exists(completed_comms_report_key(client_id, day))
    # Days before the series began are not back-filled.
    assert not comms_world.objects.exists(completed_comms_report_key("client-a", date(2026, 4, 4)))


def test_comms_report_waits_for_the_staging_table_to_cover_the_day(settings, comms_world, instance):
    future = datetime.now(UTC) + timedelta(days=3)  # later than the staging refresh
    plan_ = comms_plan(settings, comms_world, instance, future)
    assert plan_.run_requests == []
    assert "not refreshed since the day ended" in plan_.skipped[0]


def test_comms_report_clients_come_from_config_when_listed(
    comms_world, instance, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FLOWEHR_ENV", "ci")
    settings = load_settings()
    configured = settings.model_copy(
        update={"reporting": settings.reporting.model_copy(update={"clients": ["client-b"]})}
    )
    [request] = comms_plan(configured, comms_world, instance).run_requests
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == "client-b|2026-04-05"


# -- completed batch report ------------------------------------------------------------------

DONE = NOW - timedelta(hours=5)


@pytest.fixture
def batch_world(lake: Lake, instance: dg.DagsterInstance) -> Lake:
    created = DONE - timedelta(hours=1)
    records = []
    for n, status in enumerate(("DELIVERED", "FAILED")):
        records.append(item(f"r1-i{n}", DONE, status, request="r1", created=created,
                            completed=DONE, failedreason="All communication channels failed"
                            if status == "FAILED" else None))  # fmt: skip
        records.append(plan(f"r1-p{n}", DONE, "DELIVERED" if status == "DELIVERED" else "FAILED",
                            item_id=f"r1-i{n}", request="r1", created=created,
                            completed=DONE))  # fmt: skip
    records.append(item("r2-i0", DONE, "DELIVERED", request="r2", created=created, completed=DONE))
    records.append(item("r2-i1", DONE, "SENDING", request="r2", created=created))
    # r3: its item is final, but one of its plans is not: not complete (NHS Notify's rule).
    records.append(item("r3-i0", DONE, "DELIVERED", request="r3", created=created, completed=DONE))
    records.append(plan("r3-p0", DONE, "DELIVERED", item_id="r3-i0", request="r3",
                        created=created, completed=DONE))  # fmt: skip
    records.append(plan("r3-p1", DONE, "PENDING", item_id="r3-i0", request="r3", order=2,
                        created=created))  # fmt: skip
    lake.land("batch", lines(records))
    lake.cycle(NOW)
    refreshed(instance, window_start="2026-03-30")
    return lake


def batch_plan(settings: Settings, lake: Lake, instance: dg.DagsterInstance, now: datetime = NOW):
    return plan_batch_reports(
        job_name="j",
        settings=settings,
        instance=instance,
        delta=lake.delta,
        objects=lake.objects,
        now=now,
    )


R1_KEY = completed_batch_report_key("client-a", "r1", "ref-r1")


def test_batch_report_written_once_for_each_completed_batch(
    settings, batch_world, instance, report_assets
):
    plan_ = batch_plan(settings, batch_world, instance)
    assert instance.get_dynamic_partitions(BATCH_PARTITIONS.name) == ["r1"]
    [result] = run_plan(report_assets, COMPLETED_BATCH_REPORT, plan_, batch_world, instance)
    assert result.success
    rows = read_csv(batch_world, R1_KEY)
    assert sorted((r["requestitemid"], r["requestitemplanstatus"]) for r in rows) == [
        ("r1-i0", "DELIVERED"),
        ("r1-i1", "FAILED"),
    ]
    assert "nhsnumber" not in rows[0] and "nhsnumberhash" not in rows[0]
    again = batch_plan(settings, batch_world, instance)
    assert again.run_requests == [] and "all reported" in again.skipped[0]
    path = Path(batch_world.objects.uri(R1_KEY))
    mtime = path.stat().st_mtime_ns
    path.unlink()
    healed = batch_plan(settings, batch_world, instance)
    run_plan(report_assets, COMPLETED_BATCH_REPORT, healed, batch_world, instance)
    assert read_csv(batch_world, R1_KEY) == rows
    assert path.stat().st_mtime_ns >= mtime


def test_batch_report_waits_for_a_batch_to_settle(settings, batch_world, instance):
    plan_ = batch_plan(settings, batch_world, instance, now=DONE + timedelta(minutes=30))
    assert plan_.run_requests == []


def test_batch_report_ignores_batches_begun_before_the_staging_coverage(
    settings, batch_world, instance: dg.DagsterInstance
):
    fresh = dg.DagsterInstance.ephemeral()
    coverage = (NOW.date() + timedelta(days=1)).isoformat()  # starts after r1 began
    refreshed(fresh, window_start=coverage)
    assert batch_plan(settings, batch_world, fresh).run_requests == []


@pytest.mark.parametrize("request_id", ["r2", "r3", "unknown"])
def test_batch_report_fails_loudly_for_an_unfinished_or_unknown_batch(
    batch_world, instance, report_assets, request_id
):
    instance.add_dynamic_partitions(BATCH_PARTITIONS.name, [request_id])
    result = dg.materialize(
        [report_assets[COMPLETED_BATCH_REPORT]],
        instance=instance,
        partition_key=request_id,
        resources={"delta": batch_world.delta, "objects": batch_world.objects},
        raise_on_error=False,
    )
    assert not result.success
    assert not any(Path(batch_world.objects.uri("reports")).rglob("*.csv"))


# -- helpers -------------------------------------------------------------------------------


def test_contiguous_ranges_cover_wanted_keys_with_fewest_ranges():
    keys = list("abcdefgh")
    assert contiguous_ranges(keys, {"b", "c", "f"}) == [("b", "c"), ("f", "f")]
    assert contiguous_ranges(keys, {"b", "c", "f"}, max_gap=2) == [("b", "f")]
    assert contiguous_ranges(keys, set()) == []
    assert contiguous_ranges(keys, {"h"}) == [("h", "h")]


def test_report_paths_follow_the_design_and_encode_awkward_ids():
    assert completed_comms_report_key("c1", date(2026, 4, 5)) == (
        "reports/completed_comms_report/c1/2026-04-05/completed_comms_report_c1_2026-04-05.csv"
    )
    assert completed_batch_report_key("c1", "r1", "ref/../x") == (
        "reports/completed_batch_report/c1/r1/ref%2F..%2Fx/completed_batch_report_ref%2F..%2Fx.csv"
    )
    # An id that cannot be a segment as it is gets its documented safe name.
    assert completed_batch_report_key("c1", "..", "x").split("/")[3].startswith("~")
    assert completed_batch_report_key("c1", "r1", None).endswith(
        "/~none/completed_batch_report_~none.csv"
    )


def test_comms_partition_keys_round_trip():
    key = comms_partition_key("client-a", YESTERDAY)
    assert str(key) == "client-a|2026-04-05"
    assert parse_comms_partition_key(key) == ("client-a", YESTERDAY)
    assert parse_comms_partition_key("client-a|2026-04-05") == ("client-a", YESTERDAY)


def test_report_metadata_stays_bounded_however_many_reports_a_run_writes(lake: Lake) -> None:
    # Every partition of a single-run backfill carries this metadata: it must not list all.
    keys = [f"reports/completed_batch_report/c/r{i}/ref{i}/report.csv" for i in range(60)]
    for key in keys:
        lake.objects.write_bytes(key, b"requestitemid,status\nx,DELIVERED\n")
    metadata = report_metadata(lake.objects, keys[:45], keys[45:], batches=60)
    assert metadata["reports_written"] == 45 and metadata["reports_already_present"] == 15
    listed = [lake.objects.uri(k) for k in keys[:LISTED_REPORT_PATHS]]
    assert metadata["report_paths"].value == listed
    assert metadata["report_paths_not_listed"] == 60 - LISTED_REPORT_PATHS
