"""Progress lines for long steps: what is done, how fast, while the step runs.

A step that runs for minutes (a landing ingestion, a bulk load, a Spark MERGE) would
otherwise be silent between its start and end events, and an operator cannot tell a
slow step from a stuck one. ``Progress`` is a context manager around such a step's
loop: the loop counts what it finished (``advance``), and a line is logged at most
every ``interval`` seconds, and at least that often while the step runs, by a daemon
thread that stops with the block. A step shorter than the interval logs nothing.

The line goes to a plain callback (an asset passes ``context.log.info``), so this
module has no Dagster import; it never imports pyspark either: ``spark_status`` reads
a session it is given, so a process without Spark never loads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

DEFAULT_INTERVAL_SECONDS = 10.0
# The thread never logs more often than this, even when a test asks for interval 0.
MIN_WAIT_SECONDS = 0.05
SPARK_STAGES_SHOWN = 2

Status = Callable[[], str | None]


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: short enough for one line."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counters of one step and the thread that reports them.

    Args:
        name: what the lines are about (an asset key or step name).
        log: where a line goes (``context.log.info``); called from the loop's thread or
            the reporting thread, never after the block has exited.
        unit: what ``done`` and ``total`` count (files, tables, resource types).
        total: how many of ``unit`` there are, when known (gives a percentage and ETA).
        rows_unit: what ``rows`` counts (lines, rows, resources), shown with its rate.
        interval: seconds between lines (default ``DEFAULT_INTERVAL_SECONDS``).
        status: more words for each line, read when it is made (Spark's stages).
        clock: seconds, for elapsed time and rates (a fake one in tests).
    """

    def __init__(
        self,
        name: str,
        log: Callable[[str], Any],
        *,
        unit: str = "items",
        total: int | None = None,
        rows_unit: str = "rows",
        interval: float | None = None,
        status: Status | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.unit = unit
        self.total = total
        self.rows_unit = rows_unit
        self.done = 0
        self.rows = 0
        self.batches = 0
        self.phase: str | None = None
        self.interval = DEFAULT_INTERVAL_SECONDS if interval is None else interval
        self._log = log
        self._status = status
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._counters = threading.Lock()
        self._emitting = threading.Lock()
        self._closed = False
        self.failed_lines = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self._started = self._last_line = self._clock()
        self._thread = threading.Thread(
            target=self._report, name=f"progress {self.name}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reporting; once this returns no line is logged any more."""
        self._stop.set()
        with self._emitting:  # waits for a line being logged right now
            self._closed = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def advance(self, done: int = 1, *, rows: int = 0, batches: int = 0) -> None:
        """Count finished work; logs a line here when the interval has passed."""
        with self._counters:
            self.done += done
            self.rows += rows
            self.batches += batches
        self._maybe_log()

    def stage(
        self, phase: str | None, *, total: int | None = None, unit: str | None = None
    ) -> None:
        """Name what the step does now (None: nothing special); with ``total``, a new count
        of done from 0. Logs a line here when the interval has passed."""
        with self._counters:
            self.phase = phase
            if total is not None:
                self.total, self.done = total, 0
            if unit is not None:
                self.unit = unit
        self._maybe_log()

    def line(self) -> str:
        """The progress line as it stands now."""
        status = self._status() if self._status is not None else None
        with self._counters:
            elapsed = max(self._clock() - self._started, 0.0)
            parts = [self.phase] if self.phase else []
            if self.total is not None:
                share = f" ({self.done * 100 // self.total}%)" if self.total else ""
                parts.append(f"{self.done:,} of {self.total:,} {self.unit} done{share}")
            elif self.done:
                parts.append(f"{self.done:,} {self.unit} done")
            if self.batches:
                parts.append(f"{self.batches:,} batch{'es' if self.batches != 1 else ''}")
            if self.rows:
                parts.append(f"{self.rows:,} {self.rows_unit}")
                if elapsed > 0:
                    parts.append(f"{self.rows / elapsed:,.0f} {self.rows_unit}/s")
            if status:
                parts.append(status)
            parts.append(f"{_duration(elapsed)} elapsed")
            if self.total and 0 < self.done < self.total:
                parts.append(f"ETA {_duration(elapsed * (self.total - self.done) / self.done)}")
        return f"progress {self.name}: {', '.join(parts)}"

    def _maybe_log(self) -> None:
        if self._clock() - self._last_line < self.interval:
            return
        try:
            text = self.line()
        except Exception as exc:  # a status source that fails must not fail the step
            text = f"progress {self.name}: status unavailable ({type(exc).__name__})"
        with self._emitting:
            if self._closed or self._clock() - self._last_line < self.interval:
                return
            self._last_line = self._clock()
            self._log(text)

    def _report(self) -> None:
        while True:
            wait = self.interval - (self._clock() - self._last_line)
            if self._stop.wait(max(wait, MIN_WAIT_SECONDS)):
                return
            try:
                self._maybe_log()
            except Exception:  # a line that could not be logged is no reason to stop the step
                self.failed_lines += 1


def spark_status(session: object | None) -> Status | None:
    """Running stages and tasks of a classic SparkSession, read from its status tracker.

    ``None`` when there is no session or it has no tracker (Spark Connect keeps its jobs
    on the server): the lines then show the phase and elapsed time only.
    """
    if session is None:
        return None
    try:
        tracker = session.sparkContext.statusTracker()  # type: ignore[attr-defined]
    except Exception:  # Connect sessions raise on sparkContext; anything else: no tracker
        return None

    def status() -> str | None:
        stages = [tracker.getStageInfo(i) for i in sorted(tracker.getActiveStageIds())]
        running = [s for s in stages if s is not None]
        if not running:
            return "no Spark stage running"
        shown = [
            f"Spark stage {s.stageId}: {s.numCompletedTasks} of {s.numTasks} tasks done, "
            f"{s.numActiveTasks} running"
            for s in running[:SPARK_STAGES_SHOWN]
        ]
        more = len(running) - SPARK_STAGES_SHOWN
        return "; ".join(shown) + (f" (+{more} more stages)" if more > 0 else "")

    return status
