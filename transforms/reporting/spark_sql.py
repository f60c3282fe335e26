"""The reporting SQL on a Spark session: the same statements and inputs as the DuckDB path.

So that the reporting domain can run on Databricks as the feature transforms do, each
statement the DuckDB path runs (``run_query``, ``run_sql``, ``compute_view``) runs
here too: its ``:name`` placeholders filled with the same literals (``render``), the
text translated by ``spark_dialect.to_spark`` (sqlglot plus the rewrites listed there),
and the inputs handed to ``SparkSession.sql`` as DataFrame arguments in place of the
tables the SQL names. The result is a DataFrame with the DuckDB result's rows;
``tests/transforms/test_reporting_spark_sql.py`` holds every statement to that on the
same inputs.

The session must be in UTC, as the DuckDB connection is (``SET TimeZone = 'UTC'``):
UTC days, months and hours, and ``timezone(...)``'s wall clock, are read in the
session time zone. DataFrame arguments rather than temporary views under the SQL's
names: pyspark gives each a private name (a classic session) or carries it in the
plan (Spark Connect, where a query's views are only resolved when it runs), so
statements over different inputs can share a session, and a returned DataFrame never
reads another call's inputs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeAlias

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from transforms.reporting import SqlParam, load_sql, render
from transforms.reporting.spark_dialect import to_spark
from transforms.reporting.views import (
    AS_OF_DATE,
    EMAIL_FILTER_CLIENT,
    SMS_NUDGE_CLIENT,
    ViewParameters,
    ViewSpec,
)

SparkInput: TypeAlias = DataFrame | pa.Table
UTC_ZONES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00"})


def spark_text(text: str, params: Mapping[str, SqlParam], references: Collection[str] = ()) -> str:
    """A DuckDB-dialect statement with its parameters filled, as Spark SQL (see
    ``spark_dialect.to_spark`` for ``references``)."""
    return to_spark(render(text, dict(params)), references=references)


def arrow_frame(spark: SparkSession, table: pa.Table) -> DataFrame:
    """An Arrow table as a DataFrame, empty ones too.

    pyspark cannot localise the timestamps of a column with no chunks (an empty
    table's usual shape), so an empty table is given one empty chunk per column.
    """
    if table.num_rows == 0:
        columns = [pa.array([], field.type) for field in table.schema]
        table = pa.Table.from_arrays(columns, schema=table.schema)
    return spark.createDataFrame(table)


def run_spark_query(
    spark: SparkSession,
    text: str,
    tables: Mapping[str, SparkInput],
    params: Mapping[str, SqlParam],
) -> DataFrame:
    """Run reporting SQL (DuckDB's dialect) on Spark over these inputs.

    Args:
        spark: a session whose time zone is UTC.
        text: the statement, with ``:name`` placeholders.
        tables: DataFrames or Arrow tables, by the names the SQL reads them under.
        params: values for the placeholders (numbers and dates, as ``render`` takes).

    Raises:
        ValueError: the session is not in UTC.
    """
    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone not in UTC_ZONES:
        raise ValueError(f"reporting SQL needs a UTC Spark session, this one is in {zone}")
    frames: dict[str, Any] = {
        name: data if isinstance(data, DataFrame) else arrow_frame(spark, data)
        for name, data in tables.items()
    }
    return spark.sql(spark_text(text, params, frames), **frames)


def run_spark_sql(
    spark: SparkSession,
    name: str,
    tables: Mapping[str, SparkInput],
    params: Mapping[str, SqlParam],
) -> DataFrame:
    """Run a named reporting SQL file on Spark (see ``run_spark_query``)."""
    return run_spark_query(spark, load_sql(name), tables, params)


def run_spark_view(
    spark: SparkSession,
    spec: ViewSpec,
    tables: Mapping[str, SparkInput],
    parameters: ViewParameters,
) -> DataFrame:
    """One NHS Notify view on Spark, with its dictionary's columns and types.

    The Spark twin of ``views.compute.compute_view``: the same one-column client
    tables beside ``spec.reads``, the same check that the SQL's columns are the
    dictionary's, in its order.
    """
    inputs: dict[str, SparkInput] = {name: tables[name] for name in spec.reads}
    nudge = [parameters.sms_nudge_client_id] if parameters.sms_nudge_client_id else []
    inputs[SMS_NUDGE_CLIENT] = pa.table({"clientid": pa.array(nudge, pa.string())})
    inputs[EMAIL_FILTER_CLIENT] = pa.table(
        {"clientid": pa.array(list(parameters.email_filter_client_ids), pa.string())}
    )
    result = run_spark_query(spark, spec.sql(), inputs, {AS_OF_DATE: parameters.as_of_date})
    names = [c.name for c in spec.columns]
    if result.columns != names:
        raise ValueError(f"view {spec.name} returns {result.columns}, its dictionary says {names}")
    typed: list[Column] = [F.col(c.name).cast(c.type).alias(c.name) for c in spec.columns]
    return result.select(*typed)
