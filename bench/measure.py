"""Wall time and peak memory of a command's whole process tree.

Peak memory is sampled (every 100 ms) as the summed RSS of the process and all its
descendants, because ``flowehr run`` starts a JVM for Spark whose memory the Python
process's own ``ru_maxrss`` would not include.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class Measurement:
    """One timed execution."""

    seconds: float
    peak_rss_mb: float | None = None


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        for proc in [process, *process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return total


def run_command(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str, log_path: str
) -> Measurement:
    """Run a command to completion, sampling its process tree's memory.

    Raises:
        subprocess.CalledProcessError: when the command fails (see the log file).
    """
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=log, stderr=log)
        watched = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(watched))
            time.sleep(0.1)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, list(command))
    return Measurement(seconds=elapsed, peak_rss_mb=peak / 2**20)


def time_call(fn: Callable[[], Any]) -> Measurement:
    started = time.perf_counter()
    fn()
    return Measurement(seconds=time.perf_counter() - started)


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
        "samples": [asdict(m) for m in measurements],
    }
