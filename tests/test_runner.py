"""The run summary: rows, step time and throughput per asset, checks, reports."""

from __future__ import annotations

from flowehr_pipelines.runner import AssetOutcome, CheckOutcome, RunSummary, format_summary


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
