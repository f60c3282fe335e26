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
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.data import BIN, DATA_ROOT, RESULTS, ROOT, SCALES, fresh_copy, generate, run_env
from bench.e2e import bench_changelog, bench_e2e, bench_floor
from bench.ingestion import bench_ingestion
from bench.measure import (
    run_command,
)
from bench.reporting_cycle import bench_reporting, bench_windows
from bench.rerun import bench_rerun


def _built_lake(scale: str) -> Any:
    """The data directory of an end-to-end run at ``scale`` (made when missing)."""
    source = generate(scale)
    data_dir = DATA_ROOT / "runs" / f"e2e-{scale}-0"
    if not (data_dir / "lake" / "gold").exists():
        data_dir = fresh_copy(source, f"features-{scale}")
        run_command(
            [str(BIN / "flowehr"), "run"],
            env=run_env(data_dir),
            cwd=str(ROOT),
            log_path=str(data_dir / "run.log"),
        )
    return data_dir


def _run_on_built_lake(scale: str, bench: str, repeat: int) -> dict[str, Any]:
    """Run ``bench.<bench>`` in a child process on the built lake; its JSON result."""
    data_dir = _built_lake(scale)
    out = data_dir / f"{bench}.json"
    run_command(
        [str(BIN / "python"), "-m", f"bench.{bench}", str(out), str(repeat)],
        env=run_env(data_dir),
        cwd=str(ROOT),
        log_path=str(data_dir / f"{bench}.log"),
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def bench_features(scale: str, repeat: int) -> dict[str, Any]:
    """Feature build throughput with Spark's fixed costs apart (``bench/features.py``).

    Runs in a child process on the silver tables of an end-to-end run, so the JVM
    starts cold as it does in ``flowehr run``.
    """
    return _run_on_built_lake(scale, "features", repeat)


def bench_training_set(scale: str, repeat: int) -> dict[str, Any]:
    """A 10,000-row training set and a cohort on a built lake (``bench/training_set.py``)."""
    return _run_on_built_lake(scale, "training_set", repeat)


BENCHES: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "reporting": bench_reporting,
    "e2e": bench_e2e,
    "changelog": bench_changelog,
    "floor": bench_floor,
    "features": bench_features,
    "training_set": bench_training_set,
    "ingestion": bench_ingestion,
    "rerun": bench_rerun,
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
