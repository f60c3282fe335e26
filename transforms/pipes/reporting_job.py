"""A reporting statement as a Pipes job: one projection, aggregation, view or watchdog
run on Spark (``transforms.reporting.spark_sql``) and staged as Parquet.

The reporting twin of ``feature_job``, with its session, input locations and Pipes
bootstrap (Databricks or a local subprocess). Nothing launches it yet: the reporting
assets run the same statements on DuckDB, and committing staged rows with the
reporting MERGE is the orchestrator's part still to come.

Pipes extras (all JSON):

* ``statement``: ``{"sql": <.sql file stem>}``, ``{"aggregation": <table>}`` (a
  ``staging.AGGREGATIONS`` table) or ``{"view": <name>}`` (``VIEWS`` or ``QUERIES``).
* ``params``: placeholder name -> a number, ``{"date": "YYYY-MM-DD"}`` or
  ``{"timestamp": <ISO 8601 with offset>}``; for a view, ``view_parameters``:
  ``as_of_date`` (ISO date), ``sms_nudge_client_id``, ``email_filter_client_ids``.
* ``inputs``: table name -> location, as ``feature_job.read_location`` reads them.
* ``output``: the Parquet directory URI for the rows.
* ``spark_master``, ``spark_conf``: for a local session only.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (spark_python_task): find ``transforms``
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dagster_pipes import PipesContext
from pyspark.sql import DataFrame, SparkSession

from transforms.pipes.feature_job import _pipes, read_location, spark_session
from transforms.reporting import SqlParam
from transforms.reporting.spark_sql import run_spark_query, run_spark_sql, run_spark_view
from transforms.reporting.staging import AGGREGATIONS
from transforms.reporting.views import VIEWS_BY_NAME, ViewParameters

AGGREGATIONS_BY_TABLE = {spec.table: spec for spec in AGGREGATIONS}


def sql_param(value: Any) -> SqlParam:
    """A placeholder's value from its JSON form.

    Raises:
        ValueError: a timestamp without an offset, or an unknown form.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, Mapping) and set(value) == {"date"}:
        return date.fromisoformat(str(value["date"]))
    if isinstance(value, Mapping) and set(value) == {"timestamp"}:
        moment = datetime.fromisoformat(str(value["timestamp"]))
        if moment.tzinfo is None:
            raise ValueError(f"timestamp parameter {value['timestamp']!r} has no offset")
        return moment
    raise ValueError(f"unsupported parameter {value!r}")


def view_parameters(raw: Mapping[str, Any]) -> ViewParameters:
    return ViewParameters(
        as_of_date=date.fromisoformat(str(raw["as_of_date"])),
        sms_nudge_client_id=raw.get("sms_nudge_client_id"),
        email_filter_client_ids=tuple(raw.get("email_filter_client_ids") or ()),
    )


def compute(
    spark: SparkSession, extras: Mapping[str, Any], inputs: Mapping[str, DataFrame]
) -> tuple[str, DataFrame]:
    """The statement the extras name, run over these inputs: (its name, its rows).

    Raises:
        ValueError: the statement is not one of the three kinds.
    """
    statement = dict(extras["statement"])
    params = {name: sql_param(v) for name, v in dict(extras.get("params") or {}).items()}
    if set(statement) == {"sql"}:
        name = str(statement["sql"])
        return name, run_spark_sql(spark, name, inputs, params)
    if set(statement) == {"aggregation"}:
        spec = AGGREGATIONS_BY_TABLE[str(statement["aggregation"])]
        return spec.table, run_spark_query(spark, spec.sql(), inputs, params)
    if set(statement) == {"view"}:
        view = VIEWS_BY_NAME[str(statement["view"])]
        parameters = view_parameters(dict(extras["view_parameters"]))
        return view.name, run_spark_view(spark, view, inputs, parameters)
    raise ValueError(f"unknown statement {statement!r}")


def run(pipes: PipesContext) -> dict[str, Any]:
    """Run the statement the extras name and stage its rows as Parquet."""
    extras = pipes.extras
    spark = spark_session(extras)
    inputs = {name: read_location(spark, loc) for name, loc in dict(extras["inputs"]).items()}
    name, rows = compute(spark, extras, inputs)
    output = str(extras["output"])
    rows.write.mode("overwrite").parquet(output)
    summary = {"statement": name, "rows": spark.read.parquet(output).count()}
    pipes.log.info(f"{name}: {summary['rows']} rows staged")
    return summary


def main() -> None:
    with _pipes() as pipes:
        pipes.report_custom_message(run(pipes))


if __name__ == "__main__":
    main()
