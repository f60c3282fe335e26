"""Feature build throughput, with Spark's fixed costs measured apart from compute.

    python -m bench.features <out.json> <repeat>   (environment from bench.run._env)

Run in a child process on a lake whose silver tables exist, so the JVM starts cold as
in ``flowehr run``. Three things are timed separately: starting the SparkSession,
the first trivial job (JVM class loading, Python worker start), then each feature
table's full build (read silver, transform, collect as Arrow) ``repeat`` times, with
rows per second of input and of output. The first build of each table still carries
some warm-up, so the median is what to quote.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    out, repeat = Path(sys.argv[1]), int(sys.argv[2])
    from assets.features.tables import feature_options
    from assets.keys import silver_key
    from assets.spark_io import read_spark, to_arrow
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store
    from resources.delta.store import logged_row_count
    from resources.spark import build_local_spark_session
    from transforms.features.pipeline import FEATURE_TABLES, compute_feature_update

    settings = load_settings()
    delta = build_delta_store(settings)
    options = feature_options(settings)

    started = time.perf_counter()
    session = build_local_spark_session(
        settings.spark.master, "flowehr-bench", dict(settings.spark.conf)
    )
    session_start = time.perf_counter() - started
    started = time.perf_counter()
    session.range(1).count()
    first_job = time.perf_counter() - started

    tables: dict[str, Any] = {}
    for name, spec in FEATURE_TABLES.items():
        input_rows = sum(logged_row_count(delta.table(silver_key(i).path)) for i in spec.inputs)
        seconds: list[float] = []
        output_rows = 0
        for _ in range(repeat):
            started = time.perf_counter()
            inputs = {i: read_spark(session, delta, silver_key(i).path) for i in spec.inputs}
            update = compute_feature_update(spec, inputs, None, options, full_rebuild=True)
            output_rows = to_arrow(update.rows).num_rows
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        tables[name] = {
            "median_seconds": round(median, 3),
            "samples": [round(s, 3) for s in seconds],
            "runs": len(seconds),
            "input_rows": input_rows,
            "output_rows": output_rows,
            "input_rows_per_second": round(input_rows / median) if median else None,
            "output_rows_per_second": round(output_rows / median) if median else None,
        }
    session.stop()
    out.write_text(
        json.dumps(
            {
                "spark_session_start_seconds": round(session_start, 3),
                "first_job_seconds": round(first_job, 3),
                "tables": tables,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
