"""A researcher's first session with the feature store, as docs/RESEARCHERS.md tells it.

Run it against a lake the pipeline has built (``make run``), with the reader's
environment only (no pipeline config, no key):

    FLOWEHR_LAKE_ROOT=./data/lake python docs/examples/researcher_walkthrough.py

It prints what each step found; ``tests/docs/test_researcher_walkthrough.py`` runs it
on a small lake and checks the output, so the guide cannot drift from the code.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
from deltalake import DeltaTable

from flowehr_pipelines.researcher.store import FeatureStore
from transforms.cohorts import parse_cohort


def main() -> None:
    store = FeatureStore.for_researcher()

    # 1. What is there: each feature table, its Delta version and rows.
    for info in store.list_tables():
        print(f"table {info.name}: version {info.delta_version}, rows {info.rows}")

    # 2. A cohort from code lists: adults with a sepsis code (ICD-10 A40-A41, the
    #    pinned version of the repository's list), indexed at discharge. Its rows are
    #    a spine; a code-list feature says whether the code was recorded by then.
    sepsis = parse_cohort(
        {"name": "sepsis_demo", "include": ["sepsis"], "age": {"min": 18}, "index": "discharge"}
    )
    cohort = store.cohort(sepsis, output="pandas")
    print(f"cohort {sepsis.name}: {len(cohort)} visits, code lists {sorted(sepsis.codelists())}")
    on_cohort = store.training_set(cohort, ["news2.news2_total", "codelist:sepsis"])
    print(
        f"cohort training set: {len(on_cohort)} rows, "
        f"coded sepsis by the event {int(on_cohort['codelist_sepsis'].sum())}"
    )

    # 3. A training set: one row per (visit, event time) of the spine, with the
    #    features as they were known at that time: the latest horizon at or before
    #    it, in its latest revision known by then (known_at <= event time).
    news2 = store.read("news2", columns=["visit_id", "horizon_datetime"], output="pandas")
    first = news2.sort_values("horizon_datetime").iloc[0]
    spine = pd.DataFrame(
        {
            "visit_id": [int(first.visit_id), int(first.visit_id)],
            "event_time": [first.horizon_datetime, first.horizon_datetime + pd.Timedelta(hours=6)],
            "label": [0, 1],
        }
    )
    features = ["news2.news2_total", "news2.news2_partial_total"]
    training = store.training_set(spine, features)  # pandas by default
    print(f"training set: {len(training)} rows, columns {list(training.columns)}")
    as_polars = store.training_set(spine, features, output="polars")
    as_arrow = store.training_set(spine, features, output="arrow")
    print(f"same rows as polars and arrow: {as_polars.height == as_arrow.num_rows == 2}")
    known = training["news2__known_at"].dropna()
    print(f"every value known by its event time: {bool((known <= spine.event_time).all())}")

    # 4. Reproducible: pin each table's Delta version; the same versions give the
    #    same rows later, whatever the pipeline has written since.
    version = store.describe("news2").delta_version
    assert version is not None, "news2 has not been built yet: run the pipeline first"
    pinned = store.training_set(spine, features, versions={"news2": version})
    print(f"pinned to news2 version {version}: equal {pinned.equals(training)}")

    # 5. Other readers of the same tables. Polars reads Delta itself; DuckDB reads
    #    deltalake's Arrow dataset (its own delta extension needs a download).
    root = Path(os.environ["FLOWEHR_LAKE_ROOT"])
    path = str(root / "gold" / "features" / "news2")
    polars_rows = pl.read_delta(path).height
    duck = duckdb.connect()
    duck.register("news2", DeltaTable(path).to_pyarrow_dataset())
    [(duckdb_rows,)] = duck.execute("SELECT count(*) FROM news2").fetchall()
    print(f"rows read by polars {polars_rows}, by duckdb {duckdb_rows}")

    # 6. Never read the Parquet files directly: a Delta table keeps the files of its
    #    older versions until housekeeping's VACUUM, so a plain Parquet read counts
    #    superseded rows too.
    parquet_rows = sum(pq.read_metadata(p).num_rows for p in Path(path).glob("**/*.parquet"))
    print(f"rows in the table {duckdb_rows}, rows in its Parquet files {parquet_rows}")


if __name__ == "__main__":
    main()
