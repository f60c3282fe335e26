"""``flowehr metrics serve`` scraped over HTTP on 127.0.0.1 and parsed as Prometheus reads it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metrics_url(dagster_home: Path) -> Iterator[str]:
    """The real command in its own process group, stopped by its id afterwards."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from flowehr_pipelines.cli import main; main()",
            "metrics",
            "serve",
            "--port",
            "0",
            "--dagster-home",
            str(dagster_home),
        ],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert found, line
        yield f"http://127.0.0.1:{found.group(1)}/metrics"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=60) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_scrape_shows_failed_queued_and_canceled_runs_assets_and_checks(
    metrics_url: str,
) -> None:
    samples = _scrape(metrics_url)
    assert samples[("flowehr_metrics_up", ())] == 1.0
    finished = "flowehr_runs_finished"
    assert samples[(finished, (("job", "silver_job"), ("status", "FAILURE")))] == 1.0
    assert samples[(finished, (("job", "ehr_job"), ("status", "SUCCESS")))] == 1.0
    assert samples[(finished, (("job", "ehr_job"), ("status", "CANCELED")))] == 1.0
    queued = ("flowehr_runs_in_progress", (("job", "reporting_job"), ("status", "QUEUED")))
    assert samples[queued] == 1.0
    assert 0.0 < samples[("flowehr_oldest_queued_run_age_seconds", ())] < 600
    failed_at = ("flowehr_run_last_finished_timestamp_seconds", (("job", "silver_job"),))
    assert time.time() - samples[(failed_at[0], (*failed_at[1], ("status", "FAILURE")))] < 600

    asset = (("asset", "bronze/ehr/patients"),)
    assert 0.0 <= samples[("flowehr_asset_freshness_lag_seconds", asset)] < 600
    assert samples[("flowehr_asset_rows", (*asset, ("kind", "inserted")))] == 5.0
    assert samples[("flowehr_asset_rows", (*asset, ("kind", "quarantined")))] == 2.0
    assert samples[("flowehr_asset_table_rows", asset)] == 40.0

    check = (*asset, ("check", "overdue"), ("severity", "WARN"))
    assert samples[("flowehr_asset_check_passed", check)] == 0.0
    assert samples[("flowehr_asset_check_flagged", check)] == 3.0
    summary = (("outcome", "failed"), ("severity", "WARN"))
    assert samples[("flowehr_asset_checks", summary)] == 1.0
