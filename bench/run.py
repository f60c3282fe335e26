"""Run the benchmarks at a named scale and write ``docs/bench/<scale>.json``.

    python -m bench.run --scale S --repeat 3 [--only e2e,changelog,floor,...]

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

from bench.measure import Measurement, run_command, summarise, time_call

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


def generate(scale: str) -> Path:
    """Demo data for a scale, generated once and reused."""
    spec = SCALES[scale]
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
        str(spec["events"] // spec["days"]),
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


def bench_e2e(scale: str, repeat: int) -> dict[str, Any]:
    """``flowehr run`` from an empty lake: wall time, peak memory, per-asset timings."""
    source = generate(scale)
    samples: list[Measurement] = []
    steps: list[dict[str, float]] = []
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
    median_steps = {
        key: sorted(s[key] for s in steps if key in s)[len(steps) // 2] for key in steps[-1]
    }
    return {**summarise(samples), "step_seconds_median": median_steps}


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
    return {
        "rows": table.num_rows,
        "bytes_in_memory": table.nbytes,
        "parquet_bytes": target.stat().st_size,
        "write": summarise(writes),
        "read": summarise(reads),
    }


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


def bench_reporting(scale: str, repeat: int) -> dict[str, Any]:
    """One reporting cycle (pass 1 + pass 2, default windows) against the DuckDB peer.

    Both start from the same bronze and the same initial load (untimed); then one
    incremental cycle each is timed, in the same process, on the same data.
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
        run_command(
            [str(BIN / "flowehr"), "run", "--select", "key:bronze/transaction_history"],
            env=_env(data_dir),
            cwd=str(ROOT),
            log_path=str(data_dir / "ingest.log"),
        )
        os.environ.update(_env(data_dir))
        settings = load_settings()
        files = build_delta_store(settings).table(("bronze", "transaction_history")).file_uris()
        as_of = datetime.now(UTC)
        _product_cycle(data_dir, as_of, first=True)
        connection = open_database(data_dir / "peer.duckdb")
        first_window = settings.reporting.initial_window_days
        run_cycle(
            connection,
            files,
            as_of=as_of,
            projection_days=first_window,
            aggregation_days=first_window,
        )
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
    result: dict[str, Any] = {
        "product": summarise(product),
        "duckdb_peer": summarise(peer),
        "rows_after_cycle": rows,
    }
    result["ratio"] = round(
        result["product"]["median_seconds"] / result["duckdb_peer"]["median_seconds"], 3
    )
    return result


BENCHES: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "reporting": bench_reporting,
    "e2e": bench_e2e,
    "changelog": bench_changelog,
    "floor": bench_floor,
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
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
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
