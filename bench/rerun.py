"""What a rerun costs against the first run: nothing changed, and one source row changed.

Each repetition takes a fresh copy of the scale's demo data and times three
``flowehr run`` commands on it: the first run from an empty lake, a rerun with nothing
new (the observed sources are unchanged), and a rerun after one patient row of the EHR
source changed (a new ethnicity and the next change number, as an EHR edit arrives).
The ratios to the first run are the figures issue 16 sets targets for.
"""

from __future__ import annotations

import sqlite3
import statistics
from typing import Any

from bench.data import BIN, ROOT, discard, fresh_copy, generate, run_env
from bench.measure import run_command


def change_one_patient(database: str) -> None:
    """One EHR edit: the first patient's ethnicity, with the source's next change number."""
    connection = sqlite3.connect(database)
    try:
        (last,) = connection.execute(
            "SELECT value FROM source_metadata WHERE key = 'last_change_seq'"
        ).fetchone()
        head = int(last) + 1
        connection.execute(
            "UPDATE patients SET ethnicity = 'Not stated', change_seq = ? "
            "WHERE patient_id = (SELECT MIN(patient_id) FROM patients)",
            (head,),
        )
        connection.execute(
            "UPDATE source_metadata SET value = ? WHERE key = 'last_change_seq'", (str(head),)
        )
        connection.commit()
    finally:
        connection.close()


def bench_rerun(scale: str, repeat: int) -> dict[str, Any]:
    source = generate(scale)
    runs: dict[str, list[float]] = {"first": [], "noop": [], "one_row": []}
    for i in range(repeat):
        data_dir = fresh_copy(source, f"rerun-{scale}-{i}")
        env = run_env(data_dir)
        for name in ("first", "noop", "one_row"):
            if name == "one_row":
                change_one_patient(str(data_dir / "source" / "ehr.db"))
            measured = run_command(
                [str(BIN / "flowehr"), "run"],
                env=env,
                cwd=str(ROOT),
                log_path=str(data_dir / f"run-{name}.log"),
            )
            runs[name].append(round(measured.seconds, 2))
        discard(data_dir)
    medians = {name: statistics.median(seconds) for name, seconds in runs.items()}
    return {
        "seconds": runs,
        "median_seconds": medians,
        "noop_over_first": round(medians["noop"] / medians["first"], 3),
        "one_row_over_first": round(medians["one_row"] / medians["first"], 3),
        "ratios_by_repetition": [
            {
                "noop": round(runs["noop"][i] / runs["first"][i], 3),
                "one_row": round(runs["one_row"][i] / runs["first"][i], 3),
            }
            for i in range(repeat)
        ],
    }
