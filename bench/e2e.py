"""End-to-end, changelog and Parquet-floor benchmarks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.data import BIN, ROOT, discard, fresh_copy, generate, run_env
from bench.measure import (
    Measurement,
    compact_timeline,
    outside_steps,
    run_command,
    step_peaks,
    summarise,
    time_call,
)


def step_timings(dagster_home: Path) -> dict[str, float]:
    """Per-step seconds summed over every run in this Dagster home, from the event log."""
    import dagster as dg

    from flowehr_pipelines.run.runner import step_seconds

    totals: dict[str, float] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            for step, seconds in step_seconds(instance, run.run_id).items():
                totals[step] = round(totals.get(step, 0.0) + seconds, 3)
    return totals


def step_spans(dagster_home: Path) -> dict[str, list[tuple[float, float]]]:
    """Wall-clock (start, end) of every step of every run in this Dagster home."""
    import dagster as dg

    from flowehr_pipelines.run.runner import step_spans as run_step_spans

    spans: dict[str, list[tuple[float, float]]] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in instance.get_runs():
            for step, start, end in run_step_spans(instance.all_logs(run.run_id)):
                spans.setdefault(step, []).append((start, end))
    return spans


def memory_profile(measured: Measurement, dagster_home: Path) -> dict[str, Any]:
    """Where a run's memory went: the peak of each step (Python process vs JVM), the
    peak outside any step, and the thinned RSS timeline."""
    spans = step_spans(dagster_home)
    peak = max(measured.timeline, key=lambda s: s.total_mb, default=None)
    return {
        "peak": None
        if peak is None
        else {"python_mb": peak.python_mb, "jvm_mb": peak.jvm_mb, "other_mb": peak.other_mb},
        "step_peaks": step_peaks(measured.timeline, spans),
        "outside_steps": outside_steps(measured.timeline, spans),
        # [seconds since start, python MiB, JVM MiB, other MiB], one row a second.
        "timeline": compact_timeline(measured.timeline),
    }


def bench_e2e(scale: str, repeat: int) -> dict[str, Any]:
    """``flowehr run`` from an empty lake: wall time, peak memory, per-asset timings,
    and the memory profile (per-step peaks) of the run with the median peak."""
    source = generate(scale)
    samples: list[Measurement] = []
    steps: list[dict[str, float]] = []
    profiles: list[dict[str, Any]] = []
    for i in range(repeat):
        data_dir = fresh_copy(source, f"e2e-{scale}-{i}")
        measured = run_command(
            [str(BIN / "flowehr"), "run"],
            env=run_env(data_dir),
            cwd=str(ROOT),
            log_path=str(data_dir / "run.log"),
        )
        samples.append(measured)
        steps.append(step_timings(data_dir / "dagster_home"))
        profiles.append(memory_profile(measured, data_dir / "dagster_home"))
        if i < repeat - 1:
            discard(data_dir)  # the last copy stays: the feature benchmark reads its silver
    median_steps = {
        key: sorted(s[key] for s in steps if key in s)[len(steps) // 2] for key in steps[-1]
    }
    by_peak = sorted(range(repeat), key=lambda i: samples[i].peak_rss_mb or 0.0)
    return {
        **summarise(samples),
        "step_seconds_median": median_steps,
        "memory": profiles[by_peak[len(by_peak) // 2]],
    }


def _load_all_tables(data_dir: Path) -> int:
    """Load every configured source table into bronze in this process; rows read."""
    from assets.ehr.bronze_loader import load_source_table
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store
    from resources.sql_source import SqlSourceResource

    os.environ.update(run_env(data_dir))
    settings = load_settings()
    delta = build_delta_store(settings)
    rows = 0
    for connection in settings.data_source_connections:
        source = SqlSourceResource(url=settings.source_url(connection))
        for table in connection.tables:
            result = load_source_table(
                source_name=connection.name, table=table, source=source, delta=delta
            )
            rows += result.rows_read
    return rows


def bench_changelog(scale: str, repeat: int) -> dict[str, Any]:
    """A 1% changelog source load against the bulk load of the same tables.

    Timed in process around the load itself, so CLI and Dagster start-up (seconds,
    the same for both) do not hide the difference the changelog makes.
    """
    from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes

    source = generate(scale)
    bulk: list[Measurement] = []
    changelog: list[Measurement] = []
    rows: dict[str, int] = {}
    for i in range(repeat):
        data_dir = fresh_copy(source, f"changelog-{scale}-{i}")
        started = time.perf_counter()
        rows["bulk"] = _load_all_tables(data_dir)
        bulk.append(Measurement(seconds=time.perf_counter() - started))
        apply_source_changes(
            data_dir / "source" / "ehr.db", seed=100 + i, update_fraction=0.01, delete_fraction=0.0
        )
        started = time.perf_counter()
        rows["changelog_1pct"] = _load_all_tables(data_dir)
        changelog.append(Measurement(seconds=time.perf_counter() - started))
        discard(data_dir)
    result: dict[str, Any] = {
        "bulk": summarise(bulk),
        "changelog_1pct": summarise(changelog),
        "rows_read": rows,
    }
    result["ratio"] = round(
        result["changelog_1pct"]["median_seconds"] / result["bulk"]["median_seconds"], 3
    )
    return result


def bench_floor(scale: str, repeat: int) -> dict[str, Any]:
    """Plain pyarrow Parquet write and read of the bronze CDC table's bytes."""
    import pyarrow.parquet as pq

    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store

    source = generate(scale)
    data_dir = fresh_copy(source, f"floor-{scale}")
    run_command(
        [str(BIN / "flowehr"), "run", "--select", "key:bronze/transaction_history"],
        env=run_env(data_dir),
        cwd=str(ROOT),
        log_path=str(data_dir / "run.log"),
    )
    os.environ.update(run_env(data_dir))
    table = build_delta_store(load_settings()).read(("bronze", "transaction_history"))
    target = data_dir / "floor.parquet"
    writes = [time_call(lambda: pq.write_table(table, target)) for _ in range(repeat)]
    reads = [time_call(lambda: pq.read_table(target)) for _ in range(repeat)]
    result = {
        "rows": table.num_rows,
        "bytes_in_memory": table.nbytes,
        "parquet_bytes": target.stat().st_size,
        "write": summarise(writes),
        "read": summarise(reads),
    }
    discard(data_dir)
    return result
