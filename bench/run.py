"""Run the benchmarks at a named scale and write ``docs/bench/<scale>.json``.

    python -m bench.run --scale S --repeat 3 [--only e2e,changelog,floor,...]
    python -m bench.run --windows      # window scaling: 7, 90 and 365 days of history

Each measurement is repeated and reported as the median; every sample is kept in
the JSON. Data is generated once per scale into ``bench/.data/<scale>`` (same seed,
same data) and copied to a fresh directory for every repetition, so each run starts
from the same state. ``bench/report.py`` turns the JSON files into docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench.measure import (
    Measurement,
    compact_timeline,
    outside_steps,
    run_command,
    step_peaks,
    summarise,
    time_call,
)

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = ROOT / "bench" / ".data"
RESULTS = ROOT / "docs" / "bench"
BIN = Path(sys.executable).parent

SCALES: dict[str, dict[str, int]] = {
    "XS": {"patients": 1_000, "events": 100_000, "days": 30},
    "S": {"patients": 10_000, "events": 1_000_000, "days": 30},
    "M": {"patients": 100_000, "events": 10_000_000, "days": 30},
    "L": {"patients": 1_000_000, "events": 100_000_000, "days": 30},
}


def _env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWEHR_CONFIG_DIR": str(ROOT),
        "FLOWEHR_ENV": "local",
        "FLOWEHR_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster_home"),
        "FLOWEHR_PSEUDONYMISATION_KEY": "benchmark-key-not-secret-0123456789",
    }


# Window scaling: the same small daily volume, only the length of history differs.
WINDOW_HISTORIES = (7, 90, 365)
WINDOW_SPEC = {"patients": 1_000, "events_per_day": 2_000}


def generate(scale: str, spec: dict[str, int] | None = None) -> Path:
    """Demo data for a scale, generated once and reused."""
    spec = spec or SCALES[scale]
    target = DATA_ROOT / scale
    marker = target / ".complete"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    start = date.today() - timedelta(days=spec["days"] - 1)
    command = [
        str(BIN / "flowehr"),
        "demo-data",
        "--patients",
        str(spec["patients"]),
        "--days",
        str(spec["days"]),
        "--events-per-day",
        str(spec.get("events_per_day") or spec["events"] // spec["days"]),
        "--seed",
        "42",
        "--start-date",
        start.isoformat(),
    ]
    measured = run_command(
        command, env=_env(target), cwd=str(ROOT), log_path=str(target / "gen.log")
    )
    (target / "generation.json").write_text(json.dumps({"seconds": measured.seconds}))
    marker.touch()
    return target


def fresh_copy(source: Path, name: str) -> Path:
    """A private copy of the generated source and landing files (no lake state)."""
    target = DATA_ROOT / "runs" / name
    shutil.rmtree(target, ignore_errors=True)
    (target / "lake").mkdir(parents=True)
    shutil.copytree(source / "source", target / "source")
    shutil.copytree(source / "lake" / "landing", target / "lake" / "landing")
    if (source / "secrets").exists():
        shutil.copytree(source / "secrets", target / "secrets")
    return target


def discard(data_dir: Path) -> None:
    """Remove a repetition's private copy: at M each copy is ~8 GB."""
    shutil.rmtree(data_dir, ignore_errors=True)


def step_timings(dagster_home: Path) -> dict[str, float]:
    """Per-step seconds summed over every run in this Dagster home, from the event log."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from flowehr_pipelines.runner import step_seconds

    totals: dict[str, float] = {}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        for run in instance.get_runs():
            for step, seconds in step_seconds(instance, run.run_id).items():
                totals[step] = round(totals.get(step, 0.0) + seconds, 3)
    return totals


def step_spans(dagster_home: Path) -> dict[str, list[tuple[float, float]]]:
    """Wall-clock (start, end) of every step of every run in this Dagster home."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    from flowehr_pipelines.runner import step_spans as run_step_spans

    spans: dict[str, list[tuple[float, float]]] = {}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
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
            env=_env(data_dir),
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
    from assets.ehr import load_source_table
    from flowehr_pipelines.config import load_settings
    from resources import build_delta_store
    from resources.sql_source import SqlSourceResource

    os.environ.update(_env(data_dir))
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
    from flowehr_pipelines.synthetic import apply_source_changes

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
    from resources import build_delta_store

    source = generate(scale)
    data_dir = fresh_copy(source, f"floor-{scale}")
    run_command(
        [str(BIN / "flowehr"), "run", "--select", "key:bronze/transaction_history"],
        env=_env(data_dir),
        cwd=str(ROOT),
        log_path=str(data_dir / "run.log"),
    )
    os.environ.update(_env(data_dir))
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


def _product_cycle(data_dir: Path, as_of: datetime, *, first: bool) -> None:
    """Pass 1 (three projections) then pass 2 (two aggregations), in this process."""
    from assets.reporting import refresh_aggregation, refresh_projection
    from flowehr_pipelines.config import load_settings
    from resources import build_delta_store
    from resources.pseudonymiser import Pseudonymiser
    from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS

    os.environ.update(_env(data_dir))
    settings = load_settings()
    reporting = settings.reporting
    delta = build_delta_store(settings)
    pseudonymiser = Pseudonymiser(key=os.environ["FLOWEHR_PSEUDONYMISATION_KEY"])
    initial = reporting.initial_window_days if first else None
    for spec in PROJECTIONS:
        refresh_projection(
            spec,
            delta=delta,
            pseudonymise=pseudonymiser.hash_value,
            as_of=as_of,
            window_days=reporting.projection_window_days,
            tz=reporting.timezone,
            initial_window_days=initial,
        )
    for agg in AGGREGATIONS:
        refresh_aggregation(
            agg,
            delta=delta,
            as_of=as_of,
            window_days=reporting.aggregation_window_days,
            initial_window_days=initial,
        )


LANDING = Path("lake") / "landing" / "transaction_history"


def _hold_back_last_landing_file(data_dir: Path) -> tuple[Path, Path]:
    """Move the newest landed CDC file aside: it arrives between the two cycles."""
    newest = sorted((data_dir / LANDING).rglob("*.jsonl"))[-1]
    held = data_dir / "held" / newest.relative_to(data_dir)
    held.parent.mkdir(parents=True, exist_ok=True)
    newest.rename(held)
    return held, newest


def _ingest_in_process(data_dir: Path) -> None:
    """Land pending CDC files into bronze (the untimed step before an incremental cycle)."""
    import logging

    from assets.cdc_ingestion import ingest_landing_files
    from flowehr_pipelines.config import load_settings
    from resources import build_delta_store, build_object_store

    os.environ.update(_env(data_dir))
    settings = load_settings()
    ingest_landing_files(
        objects=build_object_store(settings),
        delta=build_delta_store(settings),
        now=datetime.now(UTC),
        log=logging.getLogger("bench"),  # type: ignore[arg-type]
    )


def _prepare_incremental(data_dir: Path) -> tuple[datetime, list[str]]:
    """Bronze without the newest file, the product's first (migration) load and one
    steady cycle, then the newest file landed: the state an incremental cycle starts
    from (the caller loads the peer and ingests the file).

    Returns:
        The initial cycle's as-of time and bronze's files before the new one.
    """
    held, landed = _hold_back_last_landing_file(data_dir)
    run_command(
        [str(BIN / "flowehr"), "run", "--select", "key:bronze/transaction_history"],
        env=_env(data_dir),
        cwd=str(ROOT),
        log_path=str(data_dir / "ingest.log"),
    )
    as_of = datetime.now(UTC)
    _product_cycle(data_dir, as_of, first=True)
    # One untimed cycle with the default windows: the steady state of hourly cycles.
    _product_cycle(data_dir, as_of, first=False)
    held.rename(landed)
    return as_of, _bronze_files(data_dir)


def _bronze_files(data_dir: Path) -> list[str]:
    from flowehr_pipelines.config import load_settings
    from resources import build_delta_store

    os.environ.update(_env(data_dir))
    return build_delta_store(load_settings()).table(("bronze", "transaction_history")).file_uris()


def bench_reporting(scale: str, repeat: int) -> dict[str, Any]:
    """One reporting cycle (pass 1 + pass 2, default windows) against the DuckDB peer.

    Both start from the same bronze and the same initial load (untimed); then the
    newest landed file is ingested (untimed) and one incremental cycle each is timed,
    in the same process, on the same data. The peer re-projects its whole window each
    cycle, as a DuckDB user's MERGE would.
    """
    from bench.peer_duckdb import open_database, run_cycle
    from flowehr_pipelines.config import load_settings
    from resources import build_delta_store
    from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS

    source = generate(scale)
    product: list[Measurement] = []
    peer: list[Measurement] = []
    for i in range(repeat):
        data_dir = fresh_copy(source, f"reporting-{scale}-{i}")
        as_of, before = _prepare_incremental(data_dir)
        settings = load_settings()
        connection = open_database(data_dir / "peer.duckdb")
        first_window = settings.reporting.initial_window_days
        run_cycle(
            connection,
            before,
            as_of=as_of,
            projection_days=first_window,
            aggregation_days=first_window,
        )
        steady = partial(
            run_cycle,
            connection,
            before,
            as_of=as_of,
            projection_days=settings.reporting.projection_window_days,
            aggregation_days=settings.reporting.aggregation_window_days,
        )
        steady()  # as the product: one untimed cycle with the default windows
        _ingest_in_process(data_dir)
        files = _bronze_files(data_dir)
        later = as_of + timedelta(hours=1)
        product.append(time_call(partial(_product_cycle, data_dir, later, first=False)))
        peer_cycle = partial(
            run_cycle,
            connection,
            files,
            as_of=later,
            projection_days=settings.reporting.projection_window_days,
            aggregation_days=settings.reporting.aggregation_window_days,
        )
        peer.append(time_call(peer_cycle))
        # Same data, same SQL: the two sides must agree, or the comparison means nothing.
        delta = build_delta_store(settings)
        tables = [spec.table for spec in PROJECTIONS] + [spec.table for spec in AGGREGATIONS]
        rows = {}
        for table in tables:
            counted = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            rows[table] = {
                "product": delta.read(("reporting", table), columns=[]).num_rows,
                "duckdb_peer": counted[0] if counted else None,
            }
        connection.close()
        discard(data_dir)
    result: dict[str, Any] = {
        "cycle": "steady cycle after one newly landed CDC file",
        "product": summarise(product),
        "duckdb_peer": summarise(peer),
        "rows_after_cycle": rows,
    }
    result["ratio"] = round(
        result["product"]["median_seconds"] / result["duckdb_peer"]["median_seconds"], 3
    )
    result["rows_agree"] = all(sides["product"] == sides["duckdb_peer"] for sides in rows.values())
    return result


def bench_windows(repeat: int) -> dict[str, Any]:
    """One incremental reporting cycle with 7, 90 and 365 days of history.

    Every history has the same daily volume (``WINDOW_SPEC``), so only its length
    differs; the cycle (default windows) should cost the same for all three.
    """
    results: dict[str, Any] = {"spec": WINDOW_SPEC, "histories": {}}
    for days in WINDOW_HISTORIES:
        source = generate(f"history-{days}d", {**WINDOW_SPEC, "days": days})
        samples = []
        for i in range(repeat):
            data_dir = fresh_copy(source, f"history-{days}d-{i}")
            as_of, _ = _prepare_incremental(data_dir)
            _ingest_in_process(data_dir)
            later = as_of + timedelta(hours=1)
            samples.append(time_call(partial(_product_cycle, data_dir, later, first=False)))
            shutil.rmtree(data_dir, ignore_errors=True)
        results["histories"][str(days)] = summarise(samples)
    shortest = results["histories"][str(WINDOW_HISTORIES[0])]["median_seconds"]
    longest = results["histories"][str(WINDOW_HISTORIES[-1])]["median_seconds"]
    results["ratio_longest_to_shortest"] = round(longest / shortest, 3)
    return results


def bench_features(scale: str, repeat: int) -> dict[str, Any]:
    """Feature build throughput with Spark's fixed costs apart (``bench/features.py``).

    Runs in a child process on the silver tables of an end-to-end run, so the JVM
    starts cold as it does in ``flowehr run``.
    """
    source = generate(scale)
    data_dir = DATA_ROOT / "runs" / f"e2e-{scale}-0"
    if not (data_dir / "lake" / "silver").exists():
        data_dir = fresh_copy(source, f"features-{scale}")
        run_command(
            [str(BIN / "flowehr"), "run"],
            env=_env(data_dir),
            cwd=str(ROOT),
            log_path=str(data_dir / "run.log"),
        )
    out = data_dir / "features.json"
    run_command(
        [str(BIN / "python"), "-m", "bench.features", str(out), str(repeat)],
        env=_env(data_dir),
        cwd=str(ROOT),
        log_path=str(data_dir / "features.log"),
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


BENCHES: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "reporting": bench_reporting,
    "e2e": bench_e2e,
    "changelog": bench_changelog,
    "floor": bench_floor,
    "features": bench_features,
}


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB",
        "python": platform.python_version(),
        "versions": {
            p: version(p) for p in ("dagster", "pyspark", "deltalake", "duckdb", "pyarrow")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="S")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument(
        "--windows", action="store_true", help="run the window-scaling benchmark only"
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.windows:
        out_path = RESULTS / "windows.json"
        result = {"environment": environment(), **bench_windows(args.repeat)}
        out_path.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {out_path}")
        return
    out_path = RESULTS / f"{args.scale}.json"
    results: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    results.update({"scale": args.scale, **SCALES[args.scale], "environment": environment()})
    for name in args.only.split(","):
        started = time.perf_counter()
        print(f"[{args.scale}] {name} ...", flush=True)
        results[name] = BENCHES[name](args.scale, args.repeat)
        print(f"[{args.scale}] {name} done in {time.perf_counter() - started:.0f}s", flush=True)
        out_path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
