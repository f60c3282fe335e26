"""Report previews (Markdown rows, channel chart) and day-range backfills of comms reports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pytest

from assets.reports.definitions import build_defs
from assets.reports.partitions import (
    BATCH_PARTITIONS,
    CLIENT_PARTITIONS,
    COMPLETED_BATCH_REPORT,
    COMPLETED_COMMS_REPORT,
    RANGE_END_TAG,
    RANGE_START_TAG,
    comms_partition_key,
)
from assets.reports.previews import (
    PREVIEW_ROWS,
    chart_key,
    completed_channel_counts,
    markdown_preview,
)
from assets.reports.writing import completed_batch_report_key, completed_comms_report_key
from flowehr_pipelines.config import Settings, load_settings
from tests.assets.reporting_world import Lake, item, lines, plan

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
DAY_1, DAY_2 = date(2026, 4, 4), date(2026, 4, 5)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NHS_NUMBER = "9434765919"  # what reporting_world puts on every item


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=LONDON).astimezone(UTC)


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def report_assets(settings: Settings) -> dict[dg.AssetKey, Any]:
    assets = build_defs(settings).assets or []
    return {key: a for a in assets for key in a.keys}  # type: ignore[union-attr]


@pytest.fixture
def lake(settings: Settings) -> Lake:
    """Client A: 15 items completed on DAY_2 (SMS, some also by letter), 1 on DAY_1."""
    world = Lake.at(Path(settings.lake_root))
    records = []
    for n in range(15):
        item_id = f"d2-{n:02d}"
        records.append(item(item_id, noon(DAY_2), "DELIVERED", completed=noon(DAY_2)))
        records.append(plan(f"{item_id}-sms", noon(DAY_2), "DELIVERED", item_id=item_id,
                            completed=noon(DAY_2)))  # fmt: skip
        if n % 3 == 0:
            records.append(plan(f"{item_id}-letter", noon(DAY_2), "FAILED", item_id=item_id,
                                channel="LETTER", order=2, completed=noon(DAY_2),
                                failedreason="Returned | address unknown"))  # fmt: skip
    records.append(item("d1-00", noon(DAY_1), "DELIVERED", completed=noon(DAY_1)))
    records.append(plan("d1-00-email", noon(DAY_1), "DELIVERED", item_id="d1-00",
                        channel="EMAIL", completed=noon(DAY_1)))  # fmt: skip
    world.land("items", lines(records))
    world.cycle(NOW)
    return world


def materialise_range(
    asset: Any, lake: Lake, instance: dg.DagsterInstance, start: str, end: str
) -> dg.ExecuteInProcessResult:
    """One run over a partition range, as a single-run backfill from the UI launches it."""
    return dg.materialize(
        [asset],
        instance=instance,
        resources={"delta": lake.delta, "objects": lake.objects},
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
    )


@pytest.fixture
def comms_result(
    lake: Lake, instance: dg.DagsterInstance, report_assets: dict[dg.AssetKey, Any]
) -> dg.ExecuteInProcessResult:
    assert CLIENT_PARTITIONS.name is not None
    instance.add_dynamic_partitions(CLIENT_PARTITIONS.name, ["client-a"])
    return materialise_range(
        report_assets[COMPLETED_COMMS_REPORT],
        lake,
        instance,
        str(comms_partition_key("client-a", DAY_1)),
        str(comms_partition_key("client-a", DAY_2)),
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    event = result.get_asset_materialization_events()[0]
    assert event.materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_comms_report_backfill_over_a_day_range_writes_each_day_in_one_run(
    comms_result: dg.ExecuteInProcessResult, lake: Lake, instance: dg.DagsterInstance
) -> None:
    assert comms_result.success
    for day in (DAY_1, DAY_2):
        assert lake.objects.exists(completed_comms_report_key("client-a", day))
    assert instance.get_materialized_partitions(COMPLETED_COMMS_REPORT) == {
        "client-a|2026-04-04",
        "client-a|2026-04-05",
    }
    metadata = _metadata(comms_result)
    assert metadata["reports_written"] == 2
    assert metadata["report_dates"] == ["2026-04-04", "2026-04-05"]


def test_comms_report_preview_is_markdown_capped_and_without_patient_values(
    comms_result: dg.ExecuteInProcessResult,
) -> None:
    preview = _metadata(comms_result)["preview"]
    table_rows = [line for line in preview.splitlines() if line.startswith("| ")]
    assert table_rows[0].startswith("| report | requestid |")
    assert len(table_rows) - 1 == PREVIEW_ROWS  # 21 report rows, 10 shown
    assert "Returned \\| address unknown" in preview  # a "|" in a value cannot break the table
    assert NHS_NUMBER not in preview and "nhsnumber" not in preview


def test_comms_report_chart_is_a_png_beside_each_new_report(
    comms_result: dg.ExecuteInProcessResult, lake: Lake
) -> None:
    charts = [chart_key(completed_comms_report_key("client-a", d)) for d in (DAY_1, DAY_2)]
    for key in charts:
        assert key.endswith("/chart.png")
        assert lake.objects.read_bytes(key).startswith(PNG_SIGNATURE)
    metadata = _metadata(comms_result)
    assert metadata["chart_paths"] == [lake.objects.uri(k) for k in charts]
    assert metadata["chart_path"] == lake.objects.uri(charts[0])
    assert f"({lake.objects.uri(charts[0])})" in metadata["chart"]


def test_comms_report_existing_report_gets_no_new_chart(
    comms_result: dg.ExecuteInProcessResult,
    lake: Lake,
    instance: dg.DagsterInstance,
    report_assets: dict[dg.AssetKey, Any],
) -> None:
    again = materialise_range(
        report_assets[COMPLETED_COMMS_REPORT],
        lake,
        instance,
        "client-a|2026-04-05",
        "client-a|2026-04-05",
    )
    metadata = _metadata(again)
    assert (metadata["reports_written"], metadata["reports_already_present"]) == (0, 1)
    assert metadata["chart_paths"] == [] and "chart_path" not in metadata
    assert len([r for r in metadata["preview"].splitlines() if r.startswith("| ")]) - 1 == 10


def test_comms_report_left_without_its_chart_by_a_crash_gets_it_on_the_next_run(
    comms_result: dg.ExecuteInProcessResult,
    lake: Lake,
    instance: dg.DagsterInstance,
    report_assets: dict[dg.AssetKey, Any],
) -> None:
    report = completed_comms_report_key("client-a", DAY_2)
    chart = Path(lake.objects.uri(chart_key(report)))
    drawn = chart.read_bytes()
    chart.unlink()  # what a kill between writing the report and its chart leaves
    written_at = Path(lake.objects.uri(report)).stat().st_mtime_ns
    again = materialise_range(
        report_assets[COMPLETED_COMMS_REPORT],
        lake,
        instance,
        "client-a|2026-04-05",
        "client-a|2026-04-05",
    )
    metadata = _metadata(again)
    assert (metadata["reports_written"], metadata["reports_already_present"]) == (0, 1)
    assert chart.read_bytes() == drawn
    assert metadata["chart_paths"] == [str(chart)]
    assert Path(lake.objects.uri(report)).stat().st_mtime_ns == written_at  # not rewritten


def test_batch_report_preview_lists_its_first_rows(
    settings: Settings, instance: dg.DagsterInstance, report_assets: dict[dg.AssetKey, Any]
) -> None:
    lake = Lake.at(Path(settings.lake_root))
    done = NOW - timedelta(hours=5)
    lake.land("batch", lines([
        item("r1-i0", done, "DELIVERED", request="r1", completed=done),
        plan("r1-p0", done, "DELIVERED", item_id="r1-i0", request="r1", completed=done),
    ]))  # fmt: skip
    lake.cycle(NOW)
    assert BATCH_PARTITIONS.name is not None
    instance.add_dynamic_partitions(BATCH_PARTITIONS.name, ["r1"])
    result = dg.materialize(
        [report_assets[COMPLETED_BATCH_REPORT]],
        instance=instance,
        partition_key="r1",
        resources={"delta": lake.delta, "objects": lake.objects},
    )
    preview = _metadata(result)["preview"]
    assert "completed_batch_report_ref-r1.csv" in preview and "DELIVERED" in preview
    assert NHS_NUMBER not in preview
    assert lake.objects.exists(completed_batch_report_key("client-a", "r1", "ref-r1"))


def test_markdown_preview_reads_only_as_many_reports_as_it_needs(lake: Lake) -> None:
    keys = [f"previews/{n}.csv" for n in range(3)]
    for n, key in enumerate(keys):
        lake.objects.write_bytes(key, f"a,b\n{n},x|y\n{n},\n".encode())
    preview = markdown_preview(lake.objects, keys, limit=3)
    assert "_First 3 row(s) of 2 of 3 report(s)._" in preview
    assert "| 0.csv | 0 | x\\|y |" in preview
    assert markdown_preview(lake.objects, []) == "_No report in this run._"


def test_completed_channel_counts_counts_each_delivered_plan_by_channel() -> None:
    report = pa.table(
        {
            "communicationtype": ["SMS", "LETTER", "SMS", "EMAIL", None, "SMS"],
            "requestitemplanstatus": ["DELIVERED", "DELIVERED", "DELIVERED", "FAILED", None, None],
        }
    )
    assert completed_channel_counts(report) == {"SMS": 2, "LETTER": 1}
    assert completed_channel_counts(pa.table({"x": [1]})) == {}
