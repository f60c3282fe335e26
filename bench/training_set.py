"""Training-set build time for a 10,000-row spine, on a lake the pipeline has built.

    python -m bench.training_set <out.json> <repeat>   (environment from bench.run._env)

The spine is 10,000 (visit, event time) rows drawn with a fixed seed from the
published demographics (a time within each stay), so every scale gets the same kind
of spine. Timed ``repeat`` times each: a training set of four tables and a code-list
feature with the known-at join (the default), the same with the event-time join,
and the ``sepsis_adults`` cohort. Reads go through the researcher API as a
researcher would (delta-rs to Arrow, joined in DuckDB, no Spark).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

SPINE_ROWS = 10_000
FEATURES = [
    "news2",
    "vital_signs.*_4h",
    "lab_summaries",
    "patient_demographics.age_at_admission",
    "codelist:sepsis",
]


def spine(store: Any) -> Any:
    import pandas as pd

    visits = store.read(
        "outcomes", columns=["visit_id", "admission_datetime", "discharge_datetime"]
    ).to_pylist()
    rng = random.Random(42)
    rows = []
    for _ in range(SPINE_ROWS):
        visit = rng.choice(visits)
        start = visit["admission_datetime"]
        end = visit["discharge_datetime"] or start + timedelta(days=2)
        rows.append((visit["visit_id"], start + (end - start) * rng.random()))
    return pd.DataFrame(rows, columns=["visit_id", "event_time"])


def timed(repeat: int, call: Any) -> tuple[list[float], Any]:
    seconds, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        seconds.append(round(time.perf_counter() - started, 3))
    return seconds, result


def main() -> None:
    out, repeat = Path(sys.argv[1]), int(sys.argv[2])
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store
    from flowehr_pipelines.researcher.store import FeatureStore

    store = FeatureStore(build_delta_store(load_settings()))
    rows = spine(store)
    known, table = timed(repeat, lambda: store.training_set(rows, FEATURES, output="arrow"))
    event, _ = timed(
        repeat, lambda: store.training_set(rows, FEATURES, known_at=False, output="arrow")
    )
    cohort, members = timed(repeat, lambda: store.cohort("sepsis_adults"))
    result = {
        "spine_rows": SPINE_ROWS,
        "features": FEATURES,
        "output_columns": table.num_columns,
        "known_at_join_seconds": known,
        "known_at_join_median": statistics.median(known),
        "event_time_join_seconds": event,
        "event_time_join_median": statistics.median(event),
        "cohort_seconds": cohort,
        "cohort_median": statistics.median(cohort),
        "cohort_visits": members.num_rows,
        "feature_rows": {
            name: store.describe(name).rows
            for name in ("news2", "vital_signs", "lab_summaries", "diagnoses")
        },
    }
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
