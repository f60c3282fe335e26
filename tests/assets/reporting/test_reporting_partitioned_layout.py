"""The projections are partitioned by created date, so a cycle rewrites only the days
it updates and pass 2 re-aggregates only those days; the content is what an
unpartitioned layout gives."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from assets.reporting.staging import staging_key
from tests.assets import reporting_world
from tests.assets.reporting_world import NOW, Lake, item, lines, plan
from transforms.reporting.staging import PROJECTIONS

DAY = timedelta(days=1)


def history() -> list[dict]:
    """Items and plans created on five days, each finishing a few hours later."""
    records = []
    for d in range(5):
        created = NOW - (5 - d) * DAY
        for i in range(3):
            item_id = f"item-{d}-{i}"
            records.append(item(item_id, created, "ENRICHED", request=f"request-{d}"))
            request = f"request-{d}"
            records.append(
                plan(f"plan-{d}-{i}", created, "PENDING", item_id=item_id, request=request)
            )
            if i:
                done = created + timedelta(hours=i)
                records.append(
                    item(
                        item_id, done, "DELIVERED", created=created, completed=done, request=request
                    )
                )
                records.append(
                    plan(
                        f"plan-{d}-{i}",
                        done,
                        "DELIVERED",
                        item_id=item_id,
                        created=created,
                        request=request,
                    )
                )
    return records


def later_changes() -> list[dict]:
    """The newest day's last item completes, and a new item arrives."""
    created = NOW - DAY
    done = NOW - timedelta(hours=2)
    # Dimensions never change over an entity's life: the item stays in its request.
    return [
        item("item-4-0", done, "FAILED", created=created, completed=done, request="request-4"),
        plan("plan-4-0", done, "FAILED", item_id="item-4-0", created=created, request="request-4"),
        item("item-new", NOW - timedelta(hours=1), "ENRICHED"),
    ]


def test_projections_are_partitioned_by_created_date(tmp_path: Path):
    lake = Lake.at(tmp_path)
    lake.land("history", lines(history()))
    lake.cycle()
    for table in ("request_item_status", "request_item_plan_status"):
        dt = lake.delta.table(staging_key(table).path)
        assert dt.metadata().partition_columns == ["createddate"]
    assert (
        lake.delta.table(staging_key("client_latest_name").path).metadata().partition_columns == []
    )


def test_second_cycle_rewrites_and_reaggregates_only_the_changed_days(tmp_path: Path):
    lake = Lake.at(tmp_path)
    lake.land("history", lines(history()))
    lake.cycle()
    lake.land("later", lines(later_changes()), day="2026/04/02")
    lake.ingest()
    projected = lake.project()
    assert projected["request_item_status"]["rows_updated"] == 1
    assert projected["request_item_status"]["rows_inserted"] == 1
    aggregated = lake.aggregate()
    summary = aggregated["request_item_status_summary"]
    assert summary["incremental_after_source_version"] >= 0
    assert summary["source_rows_in_window"] < lake.staging("request_item_status").num_rows

    # The same records taken in by a single cycle give the same tables.
    whole = Lake.at(tmp_path / "whole")
    whole.land("history", lines(history()))
    whole.land("later", lines(later_changes()), day="2026/04/02")
    whole.cycle()
    assert lake.snapshot() == whole.snapshot()


def test_unpartitioned_tables_of_an_earlier_version_are_laid_out_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    lake = Lake.at(tmp_path)
    lake.land("history", lines(history()))
    unpartitioned = tuple(replace(spec, partition_by=None) for spec in PROJECTIONS)
    with monkeypatch.context() as earlier_version:
        earlier_version.setattr(reporting_world, "PROJECTIONS", unpartitioned)
        lake.cycle()
    path = staging_key("request_item_status").path
    assert lake.delta.table(path).metadata().partition_columns == []
    lake.land("later", lines(later_changes()), day="2026/04/02")
    lake.cycle()
    path = staging_key("request_item_status").path
    assert lake.delta.table(path).metadata().partition_columns == ["createddate"]

    whole = Lake.at(tmp_path / "whole")
    whole.land("history", lines(history()))
    whole.land("later", lines(later_changes()), day="2026/04/02")
    whole.cycle()
    assert lake.snapshot() == whole.snapshot()
