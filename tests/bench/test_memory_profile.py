"""The e2e benchmark says which step the peak memory belongs to, and the report shows it."""

from __future__ import annotations

import sys
from typing import Any

from bench.measure import RssSample, compact_timeline, outside_steps, run_command, step_peaks
from bench.report import render


def _sample(at: float, python: float, jvm: float = 0.0) -> RssSample:
    return RssSample(at=at, python_mb=python, jvm_mb=jvm, other_mb=0.0)


TIMELINE = [
    _sample(0.0, 100),
    _sample(1.0, 900),  # ingest
    _sample(2.0, 300),  # ingest
    _sample(3.0, 300, 2_000),  # between steps
    _sample(4.0, 400, 3_000),  # features, first run
    _sample(6.0, 500, 1_000),  # features, second run
]
SPANS = {"ingest": [(0.5, 2.5)], "features": [(3.5, 4.5), (5.5, 6.5)]}


def test_each_step_gets_the_largest_sample_taken_while_it_ran() -> None:
    peaks = step_peaks(TIMELINE, SPANS)

    assert peaks["ingest"]["peak_mb"] == 900
    assert peaks["ingest"]["python_mb"] == 900
    assert peaks["ingest"]["start_mb"] == 100
    assert peaks["features"] == {
        "peak_mb": 3_400,
        "python_mb": 400,
        "jvm_mb": 3_000,
        "other_mb": 0.0,
        "start_mb": 2_300,
        "seconds": 2.0,
    }


def test_memory_outside_every_step_is_reported_on_its_own() -> None:
    assert outside_steps(TIMELINE, SPANS) == {"peak_mb": 2_300, "python_mb": 300, "jvm_mb": 2_000}


def test_thinned_timeline_keeps_each_windows_largest_sample() -> None:
    rows = compact_timeline(TIMELINE, every=2.0)

    assert rows == [
        [1.0, 900, 0.0, 0.0],
        [3.0, 300, 2_000, 0.0],
        [4.0, 400, 3_000, 0.0],
        [6.0, 500, 1_000, 0.0],
    ]


def test_a_command_s_timeline_separates_its_own_process(tmp_path: Any) -> None:
    measured = run_command(
        [sys.executable, "-c", "import time; b = bytearray(64 * 2**20); time.sleep(0.5)"],
        env={},
        cwd=str(tmp_path),
        log_path=str(tmp_path / "log"),
    )

    assert measured.timeline
    assert measured.peak_rss_mb == max(s.total_mb for s in measured.timeline)
    assert max(s.python_mb for s in measured.timeline) >= 64
    assert all(s.jvm_mb == 0 for s in measured.timeline)


def _result(e2e: dict[str, Any]) -> dict[str, Any]:
    return {
        "scale": "M",
        "patients": 100_000,
        "events": 10_000_000,
        "environment": {"machine": "x", "python": "3.11", "date": "d", "versions": {}},
        "e2e": e2e,
    }


E2E = {
    "median_seconds": 10.0,
    "runs": 1,
    "median_peak_rss_mb": 3_400.0,
    "step_seconds_median": {"ingest": 2.0, "features": 2.0},
}


def test_report_renders_the_per_step_peak_table() -> None:
    memory = {
        "peak": {"python_mb": 400, "jvm_mb": 3_000, "other_mb": 0.0},
        "step_peaks": step_peaks(TIMELINE, SPANS),
        "outside_steps": outside_steps(TIMELINE, SPANS),
        "timeline": compact_timeline(TIMELINE),
    }

    text = render([_result({**E2E, "memory": memory})])

    assert "## Peak memory by step at M" in text
    assert "Run peak: Python 0.39 GiB + JVM 2.93 GiB + other 0.00 GiB." in text
    table = text.split("## Peak memory by step at M")[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `features` | 3.32 | 0.39 | 2.93 | 0.00 | 2.25 | 2.0 |",
        "| `ingest` | 0.88 | 0.88 | 0.00 | 0.00 | 0.10 | 2.0 |",
    ]
    assert "| (outside any step) | 2.25 | 0.29 | 1.95 | - | - | - |" in table


def test_report_without_the_memory_field_still_renders() -> None:
    text = render([_result(E2E)])

    assert "Peak memory by step" not in text
    assert "| M | 100,000 | 10,000,000 | 10.00 s (n=1) | 3.32 GiB |" in text
