"""Wall time and peak memory of a command's whole process tree.

Peak memory is sampled (every 100 ms) as the summed RSS of the process and all its
descendants, because ``flowehr run`` starts a JVM for Spark whose memory the Python
process's own ``ru_maxrss`` would not include. The samples are kept as a timeline,
split into the command's own process, the JVM(s) and its other descendants (a run
part's child process when ``flowehr run`` runs parts side by side, Spark's Python
workers), so that the peak can be attributed to the steps running at the time.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

MB = 2**20


@dataclass(frozen=True)
class RssSample:
    """Resident memory of the tree at one moment (wall-clock seconds, MiB)."""

    at: float
    python_mb: float
    jvm_mb: float
    other_mb: float

    @property
    def total_mb(self) -> float:
        return self.python_mb + self.jvm_mb + self.other_mb


@dataclass(frozen=True)
class Measurement:
    """One timed execution."""

    seconds: float
    peak_rss_mb: float | None = None
    timeline: list[RssSample] = field(default_factory=list, compare=False)


def _is_jvm(proc: psutil.Process) -> bool:
    try:
        return proc.name() in ("java", "java.exe")
    except psutil.Error:
        return False


def _tree_sample(process: psutil.Process) -> RssSample:
    """RSS of the root process, its JVM descendants and the rest, at this moment."""
    python = jvm = other = 0
    try:
        python = process.memory_info().rss
        children = process.children(recursive=True)
    except psutil.Error:
        children = []
    for proc in children:
        try:
            rss = proc.memory_info().rss
        except psutil.Error:
            continue
        if _is_jvm(proc):
            jvm += rss
        else:
            other += rss
    return RssSample(
        at=round(time.time(), 3),
        python_mb=round(python / MB, 1),
        jvm_mb=round(jvm / MB, 1),
        other_mb=round(other / MB, 1),
    )


def run_command(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str, log_path: str
) -> Measurement:
    """Run a command to completion, sampling its process tree's memory.

    Raises:
        subprocess.CalledProcessError: when the command fails (see the log file).
    """
    started = time.perf_counter()
    timeline: list[RssSample] = []
    with open(log_path, "wb") as log:
        child = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=log, stderr=log)
        watched = psutil.Process(child.pid)
        while child.poll() is None:
            timeline.append(_tree_sample(watched))
            time.sleep(0.1)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, list(command))
    peak = max((s.total_mb for s in timeline), default=0.0)
    return Measurement(seconds=elapsed, peak_rss_mb=peak, timeline=timeline)


def time_call(fn: Callable[[], Any]) -> Measurement:
    started = time.perf_counter()
    fn()
    return Measurement(seconds=time.perf_counter() - started)


# Step key -> the (start, end) wall-clock times of each time it ran (a step key can
# recur: the report partition runs after the main run).
StepSpans = Mapping[str, Sequence[tuple[float, float]]]


def step_peaks(timeline: Sequence[RssSample], spans: StepSpans) -> dict[str, dict[str, float]]:
    """Peak memory of each step: the largest tree sample taken while the step ran.

    ``spans`` maps a step to its (start, end) wall-clock times from the runs' event
    logs. Within one run steps run one at a time, but independent parts of the graph
    may run side by side (in other processes), and memory a step leaves resident shows
    in the steps after it: so the split by process kind and the memory at the step's
    start are kept, to tell a step's own cost from what it ran alongside.
    """
    peaks: dict[str, dict[str, float]] = {}
    for step, runs in spans.items():
        inside = [s for s in timeline if any(a <= s.at <= b for a, b in runs)]
        if not inside:
            continue
        first = min(a for a, _ in runs)
        before = [s for s in timeline if s.at <= first]
        top = max(inside, key=lambda s: s.total_mb)
        peaks[step] = {
            "peak_mb": round(top.total_mb, 1),
            "python_mb": top.python_mb,
            "jvm_mb": top.jvm_mb,
            "other_mb": top.other_mb,
            "start_mb": round(before[-1].total_mb if before else inside[0].total_mb, 1),
            "seconds": round(sum(b - a for a, b in runs), 3),
        }
    return peaks


def outside_steps(timeline: Sequence[RssSample], spans: StepSpans) -> dict[str, float] | None:
    """The largest sample taken while no step ran (start-up, between runs, shut-down)."""
    ranges = [r for runs in spans.values() for r in runs]
    outside = [s for s in timeline if not any(a <= s.at <= b for a, b in ranges)]
    if not outside:
        return None
    top = max(outside, key=lambda s: s.total_mb)
    return {"peak_mb": round(top.total_mb, 1), "python_mb": top.python_mb, "jvm_mb": top.jvm_mb}


def compact_timeline(timeline: Sequence[RssSample], every: float = 1.0) -> list[list[float]]:
    """The timeline thinned to one sample per ``every`` seconds, keeping each window's
    largest: ``[seconds since start, python MiB, JVM MiB, other MiB]`` rows for the JSON."""
    if not timeline:
        return []
    origin = timeline[0].at
    rows: dict[int, RssSample] = {}
    for sample in timeline:
        slot = int((sample.at - origin) // every)
        if slot not in rows or sample.total_mb > rows[slot].total_mb:
            rows[slot] = sample
    return [
        [round(s.at - origin, 1), s.python_mb, s.jvm_mb, s.other_mb]
        for _, s in sorted(rows.items())
    ]


def summarise(measurements: Sequence[Measurement]) -> dict[str, Any]:
    """Median and spread of repeated measurements, with every sample kept."""
    seconds = [m.seconds for m in measurements]
    peaks = [m.peak_rss_mb for m in measurements if m.peak_rss_mb is not None]
    return {
        "median_seconds": round(statistics.median(seconds), 3),
        "min_seconds": round(min(seconds), 3),
        "max_seconds": round(max(seconds), 3),
        "runs": len(seconds),
        "median_peak_rss_mb": round(statistics.median(peaks), 1) if peaks else None,
        "samples": [{"seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb} for m in measurements],
    }
