"""The run summary: rows, step time and throughput per asset, checks, reports."""

from __future__ import annotations

import dagster as dg
import pytest

from flowehr_pipelines.definitions import defs
from flowehr_pipelines.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.runner import (
    AssetOutcome,
    CheckOutcome,
    RunSummary,
    format_summary,
    slow_dependencies,
)


def test_run_summary_shows_rows_seconds_and_rate_per_asset() -> None:
    summary = RunSummary(
        run_id="r1",
        success=True,
        assets=[
            AssetOutcome("reporting/request_item_status", 2_000, {}, 0.5),
            AssetOutcome("reports/completed_comms_report", None, {}, 1.0),
        ],
        checks=[
            CheckOutcome("reporting/request_item_status", "key_unique_not_null", True, "ERROR")
        ],
        report_paths=["/lake/reports/x.csv"],
    )
    text = format_summary(summary)
    row = next(line for line in text.splitlines() if line.startswith("reporting/"))
    assert row.split()[1:] == ["2,000", "0.5", "4,000"]
    report = next(line for line in text.splitlines() if line.startswith("reports/"))
    assert report.split()[1:] == ["-", "1.0", "-"]
    assert "checks: 1 passed, 0 failed" in text
    assert "/lake/reports/x.csv" in text


def test_run_summary_lists_failures_and_says_failed() -> None:
    summary = RunSummary(run_id="r2", success=False, failures=["step_a: boom"])
    text = format_summary(summary)
    assert text.startswith("run r2: FAILED")
    assert "step_a: boom" in text


@pytest.fixture
def all_assets() -> tuple[dg.Definitions, dg.JobDefinition]:
    definitions = defs()
    return definitions, definitions.resolve_job_def(ALL_ASSETS_JOB)


def _subset(job: dg.JobDefinition, group: str) -> dg.JobDefinition:
    keys = {k for k in job.asset_layer.selected_asset_keys if k.path[0] == group}
    graph = job.asset_layer.asset_graph
    checks = {c for c in graph.asset_check_keys if c.asset_key in keys}
    return job.get_subset(asset_selection=keys, asset_check_selection=checks)


def test_full_run_starts_spark_and_great_expectations_early(all_assets) -> None:
    _, job = all_assets
    assert slow_dependencies(job) == {"spark", "great_expectations"}


def test_reporting_only_run_starts_neither_spark_nor_great_expectations(all_assets) -> None:
    _, job = all_assets
    assert slow_dependencies(_subset(job, "reporting")) == set()


def test_silver_run_starts_spark_and_bronze_run_only_great_expectations(all_assets) -> None:
    _, job = all_assets
    assert slow_dependencies(_subset(job, "silver")) >= {"spark"}
    assert slow_dependencies(_subset(job, "bronze")) == {"great_expectations"}


def test_summary_counts_every_report_but_lists_only_the_paths_the_metadata_carries() -> None:
    summary = RunSummary(
        run_id="r1",
        success=True,
        report_paths=["/lake/reports/a.csv", "/lake/reports/b.csv"],
        report_count=2_975,
    )
    text = format_summary(summary)
    assert "reports (2,975):" in text
    assert "/lake/reports/b.csv" in text
    assert "... and 2,973 more" in text
