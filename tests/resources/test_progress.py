"""Progress lines: at the interval while the block runs, never after it, whatever happens."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from resources.progress import Progress, spark_status

FAST = 0.05


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("progress ")]


def wait_for(lines: list[str], count: int) -> None:
    """Sleep in small steps until ``count`` lines came (bounded, so a bug fails, not hangs)."""
    for _ in range(400):
        if len(lines) >= count:
            return
        time.sleep(0.01)


def test_a_line_comes_at_every_interval_while_the_block_runs() -> None:
    lines: list[str] = []
    with Progress("bronze/x", lines.append, unit="files", total=4, interval=FAST) as progress:
        progress.advance(rows=100)
        wait_for(lines, 3)
    assert len(lines) >= 3
    assert all(line.startswith("progress bronze/x: ") for line in lines)
    assert "1 of 4 files done (25%)" in lines[-1]
    assert "100 rows" in lines[-1]


def test_no_line_after_the_block_and_the_thread_is_gone() -> None:
    lines: list[str] = []
    with Progress("step", lines.append, interval=FAST):
        wait_for(lines, 1)
    after = len(lines)
    time.sleep(4 * FAST)
    assert len(lines) == after
    assert progress_threads() == []


def test_a_short_block_logs_nothing() -> None:
    lines: list[str] = []
    with Progress("step", lines.append) as progress:
        progress.advance(rows=5)
    assert lines == []


def test_an_exception_in_the_block_stops_reporting_and_propagates() -> None:
    lines: list[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        with Progress("step", lines.append, interval=FAST):
            wait_for(lines, 1)
            raise RuntimeError("boom")
    after = len(lines)
    time.sleep(4 * FAST)
    assert len(lines) == after >= 1
    assert progress_threads() == []


def test_advance_logs_once_the_interval_passed_with_rate_and_eta() -> None:
    clock = FakeClock()
    lines: list[str] = []
    with Progress(
        "bronze/transaction_history",
        lines.append,
        unit="files",
        total=10,
        rows_unit="lines",
        interval=10,
        clock=clock,
    ) as progress:
        clock.now += 5
        progress.advance(rows=500)
        assert lines == []
        clock.now += 5
        progress.advance(rows=500)
    assert lines == [
        "progress bronze/transaction_history: 2 of 10 files done (20%), 1,000 lines, "
        "100 lines/s, 10 s elapsed, ETA 40 s"
    ]


def test_stages_reset_the_count_and_batches_show() -> None:
    clock = FakeClock()
    lines: list[str] = []
    with Progress("fhir", lines.append, interval=0, clock=clock) as progress:
        progress.stage("parse", total=3, unit="files")
        clock.now += 75
        progress.advance(rows=30, batches=2)
        progress.stage("land", total=2, unit="resource types")
        clock.now += 3600
        progress.advance()
    assert lines[0] == "progress fhir: parse, 0 of 3 files done (0%), 0 s elapsed"
    assert lines[1].startswith("progress fhir: parse, 1 of 3 files done (33%), 2 batches")
    assert "1 min 15 s elapsed, ETA 2 min 30 s" in lines[1]
    assert lines[2].startswith("progress fhir: land, 0 of 2 resource types done (0%)")
    assert "land, 1 of 2 resource types done (50%)" in lines[3]
    assert "1 h 01 min elapsed" in lines[3]


def test_a_failing_status_or_log_does_not_fail_the_step() -> None:
    def broken_status() -> str:
        raise RuntimeError("tracker gone")

    lines: list[str] = []
    with Progress("step", lines.append, interval=FAST, status=broken_status):
        wait_for(lines, 1)
    assert "status unavailable (RuntimeError)" in lines[0]

    def broken_log(_: str) -> None:
        raise OSError("event log unavailable")

    with Progress("step", broken_log, interval=FAST) as progress:
        for _ in range(400):
            if progress.failed_lines:
                break
            time.sleep(0.01)
    assert progress.failed_lines >= 1
    assert progress_threads() == []


def _stage(stage_id: int, done: int, total: int, running: int) -> Any:
    return SimpleNamespace(
        stageId=stage_id, numCompletedTasks=done, numTasks=total, numActiveTasks=running
    )


def test_spark_status_names_running_stages_and_their_tasks() -> None:
    stages = {7: _stage(7, 5, 8, 2), 9: _stage(9, 0, 4, 1), 11: _stage(11, 0, 2, 0)}
    active: list[int] = []
    tracker = SimpleNamespace(getActiveStageIds=lambda: active, getStageInfo=stages.get)
    session = SimpleNamespace(sparkContext=SimpleNamespace(statusTracker=lambda: tracker))
    status = spark_status(session)
    assert status is not None
    assert status() == "no Spark stage running"
    active[:] = [9, 7]
    assert status() == (
        "Spark stage 7: 5 of 8 tasks done, 2 running; Spark stage 9: 0 of 4 tasks done, 1 running"
    )
    active.append(11)
    assert status() is not None and status().endswith("(+1 more stages)")  # type: ignore[union-attr]


def test_spark_status_is_none_without_a_tracker() -> None:
    class ConnectLike:
        @property
        def sparkContext(self) -> Any:
            raise NotImplementedError("not supported in Spark Connect")

    assert spark_status(ConnectLike()) is None
    assert spark_status(None) is None


def test_the_module_does_not_load_pyspark() -> None:
    code = "import sys, resources.progress; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
