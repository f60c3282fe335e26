"""Every reporting statement on Spark gives the DuckDB path's rows on the same inputs.

Each statement (the ``.sql`` files, the pass-2 aggregations' SQL, the views and
queries) runs over two worlds (``reporting_worlds``): DuckDB through the functions
the assets call, Spark through ``transforms.reporting.spark_sql``. Rows are compared
exactly, as sorted lists (a statement's ORDER BY is not compared), and so are the
column names and Arrow types: no normalisation is needed, because ``spark_dialect``
casts Spark's INT date parts to DuckDB's BIGINT and the views are cast to their
dictionary types on both engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession

from tests.transforms.reporting_worlds import World, empty_world, mixed_world
from transforms.reporting import SQL_DIR, load_sql, run_query, transpile
from transforms.reporting.spark_dialect import spark_pattern, to_spark
from transforms.reporting.spark_sql import (
    arrow_frame,
    run_spark_query,
    run_spark_sql,
    run_spark_view,
)
from transforms.reporting.staging import AGGREGATIONS
from transforms.reporting.views import QUERIES, VIEWS, ViewSpec, load_view_sql
from transforms.reporting.views.compute import compute_view

# Spark portability of the reporting SQL: a minute and a half of Spark queries, so it runs
# with the other Spark-target tests (make test-cluster), not in make test.
pytestmark = pytest.mark.cluster

# What each .sql file reads (the assets' inputs); a new file must be added here.
SQL_INPUTS: dict[str, tuple[str, ...]] = {
    "request_item_status": ("transaction_history",),
    "request_item_plan_status": ("transaction_history",),
    "client_latest_name": ("transaction_history",),
    "completed_batches": ("request_item_status", "request_item_plan_status"),
    "completed_comms_report": ("completed_comms",),
    "watchdog_overdue_request_item_plans": ("request_item_plan_status", "plan_thresholds"),
    "watchdog_overdue_request_items": ("request_item_status_summary",),
    "watchdog_overdue_requests": ("request_item_status",),
    "watchdog_stuck_request_items": ("request_item_status",),
    "watchdog_degraded_latency": ("raw_latency_3m",),
}
VIEW_SPECS: tuple[ViewSpec, ...] = (*VIEWS, *QUERIES)
WORLD_NAMES = ("mixed", "empty")


@pytest.fixture(scope="module")
def worlds(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[World, dict[str, DataFrame]]]:
    """Each world with its tables as Spark DataFrames (made once, reused by every test)."""
    built = [mixed_world(Path(tmp_path_factory.mktemp("landing"))), empty_world()]
    return {w.name: (w, {n: arrow_frame(spark, t) for n, t in w.tables.items()}) for w in built}


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """The rows as tuples, sorted (by repr, so NULLs and mixed values sort too)."""
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def assert_same(duck: pa.Table, on_spark: DataFrame) -> pa.Table:
    spark_table = on_spark.toArrow()
    assert spark_table.schema.names == duck.schema.names
    assert spark_table.schema.types == duck.schema.types
    assert rows(spark_table) == rows(duck)
    return spark_table


def test_every_sql_file_is_compared() -> None:
    assert set(SQL_INPUTS) == {p.stem for p in SQL_DIR.glob("*.sql")}


@pytest.mark.parametrize("world_name", WORLD_NAMES)
@pytest.mark.parametrize("name", sorted(SQL_INPUTS))
def test_sql_file_on_spark_matches_duckdb(
    spark: SparkSession, worlds: Any, world_name: str, name: str
) -> None:
    world, frames = worlds[world_name]
    params = world.sql_params(name)
    duck = run_query(load_sql(name), {t: world.tables[t] for t in SQL_INPUTS[name]}, params)
    on_spark = run_spark_sql(spark, name, {t: frames[t] for t in SQL_INPUTS[name]}, params)
    assert_same(duck, on_spark)
    if world_name == "mixed":
        assert duck.num_rows > 0, f"{name} has no rows to compare"


@pytest.mark.parametrize("world_name", WORLD_NAMES)
@pytest.mark.parametrize("spec", AGGREGATIONS, ids=lambda a: a.table)
def test_aggregation_on_spark_matches_duckdb(
    spark: SparkSession, worlds: Any, world_name: str, spec: Any
) -> None:
    world, frames = worlds[world_name]
    params = {"window_start_date": world.view_parameters.as_of_date.replace(day=1, month=1)}
    duck = run_query(spec.sql(), {spec.source: world.tables[spec.source]}, params)
    on_spark = run_spark_query(spark, spec.sql(), {spec.source: frames[spec.source]}, params)
    assert_same(duck, on_spark)


# Views read the projections the .sql files and aggregations above already compare on
# empty inputs; over the mixed world only, to keep make test's Spark queries few.
@pytest.mark.parametrize("world_name", ["mixed"])
@pytest.mark.parametrize("spec", VIEW_SPECS, ids=lambda v: v.name)
def test_view_on_spark_matches_duckdb(
    spark: SparkSession, worlds: Any, world_name: str, spec: ViewSpec
) -> None:
    world, frames = worlds[world_name]
    duck = compute_view(spec, world.tables, world.view_parameters)
    on_spark = run_spark_view(spark, spec, frames, world.view_parameters)
    assert_same(duck, on_spark)


def test_strftime_formats_become_spark_patterns_with_quoted_literals() -> None:
    assert spark_pattern("%Y-%m-%dT%H:%M:%S.%gZ") == "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    assert spark_pattern("%d/%m/%Y at %H%%") == "dd/MM/yyyy' at 'HH'%'"
    with pytest.raises(ValueError, match="%j"):
        spark_pattern("%j")


@pytest.mark.parametrize(
    "text",
    [load_sql(p.stem) for p in sorted(SQL_DIR.glob("*.sql"))]
    + [load_view_sql(v.name) for v in VIEW_SPECS]
    + [a.sql() for a in AGGREGATIONS],
)
def test_no_duckdb_only_function_or_approximation_reaches_spark(text: str) -> None:
    spark_sql = to_spark(text).upper()
    for leftover in ("EPOCH_US", "TIMEZONE(", "ISOYEAR", "PERCENTILE_APPROX", "%G", "% 7"):
        assert leftover not in spark_sql


def test_transpile_uses_the_spark_rewrites() -> None:
    assert "UNIX_MICROS" in transpile("watchdog_degraded_latency")
    assert "PERCENTILE_DISC(0.95) WITHIN GROUP" in transpile("watchdog_degraded_latency")


def test_runner_refuses_a_session_outside_utc(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.session.timeZone", "Europe/London")
    try:
        with pytest.raises(ValueError, match="UTC"):
            run_spark_query(spark, "SELECT 1 AS one", {}, {})
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_each_result_reads_its_own_inputs_and_registers_no_view(spark: SparkSession) -> None:
    sql = "SELECT numbers.n * :k AS m, '{x}' AS braces FROM numbers WHERE n > 0"
    first = run_spark_query(spark, sql, {"numbers": pa.table({"n": [3, 1, 2]})}, {"k": 2})
    second = run_spark_query(spark, sql, {"numbers": pa.table({"n": [5]})}, {"k": 1})
    assert not spark.catalog.tableExists("numbers")
    assert sorted(r["m"] for r in first.collect()) == [2, 4, 6]
    assert [tuple(r) for r in second.collect()] == [(5, "{x}")]
