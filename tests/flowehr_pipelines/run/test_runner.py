"""The run summary: rows, step time and throughput per asset, checks, reports."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.definitions import defs
from flowehr_pipelines.run.parts import concurrent_groups, independent_parts, report_inputs
from flowehr_pipelines.run.runner import (
    AssetOutcome,
    CheckOutcome,
    RunSummary,
    format_summary,
    run_assets,
)
from flowehr_pipelines.run.warmup import slow_dependencies
from tests.flowehr_pipelines.run import two_part_definitions as two_parts

TWO_PARTS = "tests.flowehr_pipelines.run.two_part_definitions:defs"


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


TRANSACTION_HISTORY = dg.AssetKey(["bronze", "transaction_history"])


def test_full_graph_splits_into_ehr_and_reporting_parts_that_share_no_asset(all_assets) -> None:
    definitions, job = all_assets
    parts = independent_parts(job, set(job.asset_layer.selected_asset_keys))
    zones = sorted(sorted({key.path[0] for key in part}) for part in parts)
    # The calendar view (reporting/views/dates) reads no table, but housekeeping, which
    # vacuums every view, joins it to the reporting part.
    assert zones == [["bronze", "gold", "internal", "silver"], ["bronze", "internal", "reporting"]]
    ehr, reporting = sorted(parts, key=lambda p: TRANSACTION_HISTORY in p)
    assert dg.AssetKey(["reporting", "views", "dates"]) in reporting
    assert not ehr & reporting
    assert TRANSACTION_HISTORY in reporting
    graph = job.asset_layer.asset_graph
    for part in parts:  # closed: every parent of a part's asset in the job is in the part
        assert all(
            p in part for k in part for p in graph.get(k).parent_keys if p in ehr | reporting
        )
    assert report_inputs(definitions) <= reporting


def test_spark_parts_and_the_rest_make_two_groups_and_only_when_both_are_selected(
    all_assets,
) -> None:
    _, job = all_assets
    selected = set(job.asset_layer.selected_asset_keys)
    spark, rest = concurrent_groups(job, selected)
    # The feature tables' housekeeping follows them into the Spark part, and so does the
    # opt-out list they read.
    assert {k.path[0] for k in spark} == {"bronze", "silver", "gold", "internal"}
    assert {k for k in spark if k.path[0] == "internal"} == {
        dg.AssetKey(["internal", "feature_housekeeping"]),
        dg.AssetKey(["internal", "national_data_opt_out"]),
    }
    assert dg.AssetKey(["bronze", "transaction_history"]) in rest
    reporting = {k for k in selected if k.path[0] == "reporting"}  # 5 parts, no Spark
    assert len(independent_parts(job, reporting)) > 1
    assert concurrent_groups(job, reporting) == [reporting]


def test_one_steps_assets_stay_in_one_part(all_assets) -> None:
    """The bronze tables of a source share no edge but are one step (one load, one lock)."""
    _, job = all_assets
    bronze = {k for k in job.asset_layer.selected_asset_keys if k.path[:2] == ["bronze", "ehr"]}
    assert len(bronze) == 5
    assert independent_parts(job, bronze) == [bronze]


@pytest.fixture
def meeting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "meeting"
    directory.mkdir()
    monkeypatch.setenv("FLOWEHR_TEST_MEETING_DIR", str(directory))
    return directory


def test_independent_parts_run_at_the_same_time_in_separate_processes(
    tmp_path: Path, meeting: Path
) -> None:
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        summary = run_assets(two_parts.defs, instance, code=TWO_PARTS)
        assert summary.success, summary.failures
        assert {a.key for a in summary.assets} == {"left", "right"}
        assert len({summary.run_id, *summary.extra_run_ids}) == 2
        assert all(r.is_success for r in instance.get_runs())
    pids = {(meeting / name).read_text() for name in ("left", "right")}
    assert len(pids) == 2  # one part in this process, the other in a child


def test_a_part_that_fails_in_a_child_fails_the_run_and_is_summarised(
    tmp_path: Path, meeting: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWEHR_TEST_FAIL", "right")  # the part the child process runs
    (meeting / "right").write_text("absent")  # left need not wait for it
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        summary = run_assets(two_parts.defs, instance, code=TWO_PARTS)
    assert not summary.success
    assert [a.key for a in summary.assets] == ["left"]
    # the summary carries the cause itself, not Dagster's "Error occurred while executing" wrapper
    assert summary.failures == ["right: RuntimeError: right was told to fail"]


def test_sequential_run_is_one_run_of_every_part(tmp_path: Path, meeting: Path) -> None:
    (meeting / "left").write_text("ahead")  # they cannot meet one after the other
    (meeting / "right").write_text("ahead")
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        summary = run_assets(two_parts.defs, instance, concurrent=False)
    assert summary.success and not summary.extra_run_ids
    assert {a.key for a in summary.assets} == {"left", "right"}
