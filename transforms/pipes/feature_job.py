"""The feature-table job: one table's update, run out of process through Dagster Pipes.

Started by ``resources.databricks``: on Databricks as a ``spark_python_task`` (the
cluster's SparkSession, native Delta), or locally as a subprocess on local Spark. It
imports ``transforms`` and ``dagster_pipes`` only, so it runs wherever they are.

Pipes extras (all JSON):

* ``feature_table``: a name in ``FEATURE_TABLES``; ``options``: ``FeatureOptions``
  fields; ``full_rebuild``: bool.
* ``inputs``: silver table name -> location; ``opted_out``: the National Data Opt-out
  pseudonyms' location, or none; ``state``: the stored fingerprints'
  location or null. A location is ``{"format": "delta", "path": ...}`` (Databricks)
  or ``{"format": "parquet", "paths": [...], "schema": <Spark schema JSON>}``.
* ``output``: ``rows``, ``changed_visits``, ``state`` -> Parquet directory URIs.
* ``spark_master``, ``spark_conf``: for a local session only.

The job writes the three outputs and reports, as a Pipes custom message, whether it
rebuilt fully, the rows and visits it wrote and the input changelog numbers it saw.
The orchestrator commits the staged rows to Delta.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (spark_python_task): find ``transforms``
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dagster_pipes import (
    PipesCliArgsParamsLoader,
    PipesContext,
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    PipesEnvVarParamsLoader,
    open_dagster_pipes,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from transforms.features.dictionary import FeatureOptions
from transforms.features.pipeline import (
    FEATURE_TABLES,
    compute_feature_update,
    input_watermarks,
)

ON_DATABRICKS = "DATABRICKS_RUNTIME_VERSION" in os.environ


def spark_session(extras: Mapping[str, Any]) -> SparkSession:
    """The cluster's session on Databricks; a local one (UTC, given master) elsewhere."""
    builder = SparkSession.builder
    if extras.get("spark_master") and not ON_DATABRICKS:
        builder = (
            builder.master(str(extras["spark_master"]))
            .appName("flowehr-feature-job")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.bindAddress", "127.0.0.1")
        )
        for key, value in dict(extras.get("spark_conf") or {}).items():
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    # UTC-adjusted microseconds in staged Parquet, as the Delta tables hold them.
    session.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    return session


def read_location(spark: SparkSession, location: Mapping[str, Any]) -> DataFrame:
    """A table from a location in the extras.

    Raises:
        ValueError: for an unknown format.
    """
    kind = location.get("format")
    if kind == "delta":
        return spark.read.format("delta").load(str(location["path"]))
    if kind == "parquet":
        schema = StructType.fromJson(_json(location["schema"]))
        paths = [str(p) for p in location.get("paths") or []]
        if not paths:
            return spark.createDataFrame([], schema)
        return spark.read.schema(schema).parquet(*paths)
    raise ValueError(f"unknown input format {kind!r}")


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def run(pipes: PipesContext) -> dict[str, Any]:
    """Compute one feature table's update from the extras and stage it as Parquet."""
    extras = pipes.extras
    spec = FEATURE_TABLES[str(extras["feature_table"])]
    options = FeatureOptions(**dict(extras.get("options") or {}))
    spark = spark_session(extras)
    inputs = {name: read_location(spark, loc) for name, loc in dict(extras["inputs"]).items()}
    state_location = extras.get("state")
    previous = read_location(spark, state_location) if state_location else None
    opt_out_location = extras.get("opted_out")
    opted_out = read_location(spark, opt_out_location) if opt_out_location else None
    update = compute_feature_update(
        spec,
        inputs,
        previous,
        options,
        full_rebuild=bool(extras.get("full_rebuild")),
        opted_out=opted_out,
    )
    output = dict(extras["output"])
    # Written once and read back for counting: Spark would otherwise recompute them.
    update.rows.write.mode("overwrite").parquet(str(output["rows"]))
    update.changed_visits.write.mode("overwrite").parquet(str(output["changed_visits"]))
    update.state.write.mode("overwrite").parquet(str(output["state"]))
    summary = {
        "feature_table": spec.name,
        "full_rebuild": update.full_rebuild,
        "rows": spark.read.parquet(str(output["rows"])).count(),
        "visits_recomputed": spark.read.parquet(str(output["changed_visits"])).count(),
        "input_changelog_numbers": input_watermarks(inputs, spec.inputs),
    }
    pipes.log.info(
        f"{spec.name}: {summary['rows']} rows for {summary['visits_recomputed']} visits "
        f"({'full rebuild' if update.full_rebuild else 'incremental'})"
    )
    return summary


@contextmanager
def _pipes() -> Iterator[PipesContext]:
    if not ON_DATABRICKS:
        with open_dagster_pipes() as pipes:
            yield pipes
        return
    # An existing cluster gets the bootstrap as CLI arguments, a new one as env vars.
    params = (
        PipesCliArgsParamsLoader()
        if "--dagster-pipes-context" in sys.argv
        else PipesEnvVarParamsLoader()
    )
    with open_dagster_pipes(
        context_loader=PipesDbfsContextLoader(),
        message_writer=PipesDbfsMessageWriter(),
        params_loader=params,
    ) as pipes:
        yield pipes


def main() -> None:
    with _pipes() as pipes:
        pipes.report_custom_message(run(pipes))


if __name__ == "__main__":
    main()
