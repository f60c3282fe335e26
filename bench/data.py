"""Benchmark data: generated once per scale, copied fresh for each measured run."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

from bench.measure import (
    run_command,
)

ROOT = Path(__file__).resolve().parents[1]

DATA_ROOT = ROOT / "bench" / ".data"

RESULTS = ROOT / "docs" / "bench"

BIN = Path(sys.executable).parent


def run_env(data_dir: Path) -> dict[str, str]:
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
        command, env=run_env(target), cwd=str(ROOT), log_path=str(target / "gen.log")
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


SCALES: dict[str, dict[str, int]] = {
    "XS": {"patients": 1_000, "events": 100_000, "days": 30},
    "S": {"patients": 10_000, "events": 1_000_000, "days": 30},
    "M": {"patients": 100_000, "events": 10_000_000, "days": 30},
    "L": {"patients": 1_000_000, "events": 100_000_000, "days": 30},
}
