"""The reporting Pipes job's statement dispatch and parameters (in process, no Pipes)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from transforms.pipes.reporting_job import compute, sql_param
from transforms.reporting import run_query, run_sql
from transforms.reporting.dictionary import REPORTING_COLUMNS, arrow_schema
from transforms.reporting.spark_sql import arrow_frame
from transforms.reporting.staging import REQUEST_ITEM_STATUS_SUMMARY
from transforms.reporting.views import VIEWS_BY_NAME, ViewParameters
from transforms.reporting.views.compute import compute_view

# Runs with the reporting SQL's Spark comparison (make test-cluster).
pytestmark = pytest.mark.cluster

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def items() -> pa.Table:
    rows: list[dict[str, Any]] = [
        {"requestitemid": "a", "clientid": "c1", "status": "ENRICHED", "createdtime": T0},
        {"requestitemid": "b", "clientid": "c1", "campaignid": "k", "status": "DELIVERED"},
        {"requestitemid": "c", "clientid": "c2", "status": "PENDING_ENRICHMENT"},
    ]
    for row in rows:
        row.setdefault("createdtime", datetime(2026, 3, 20, tzinfo=UTC))
        row["createddate"] = row["createdtime"].date()
    schema = arrow_schema(REPORTING_COLUMNS["request_item_status"])
    return pa.Table.from_pylist(rows, schema=schema)


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def test_parameters_come_from_json_forms() -> None:
    assert sql_param(3) == 3 and sql_param(1.5) == 1.5
    assert sql_param({"date": "2026-03-29"}) == date(2026, 3, 29)
    assert sql_param({"timestamp": "2026-03-29T01:00:00+01:00"}) == datetime(
        2026, 3, 29, tzinfo=UTC
    )
    for bad in ({"timestamp": "2026-03-29T01:00:00"}, True, "2026-03-29", {"x": 1}):
        with pytest.raises(ValueError):
            sql_param(bad)


def test_each_kind_of_statement_gives_the_duckdb_rows(spark: SparkSession) -> None:
    frame = {"request_item_status": arrow_frame(spark, items())}
    stamp = {"timestamp": "2026-03-28T00:00:00+00:00"}
    params = {
        "lookback_start": stamp,
        "enriched_stuck_before": stamp,
        "pending_stuck_before": stamp,
    }
    extras: dict[str, Any] = {
        "statement": {"sql": "watchdog_stuck_request_items"},
        "params": params,
    }
    name, on_spark = compute(spark, extras, frame)
    duck = run_sql(
        name, {"request_item_status": items()}, {k: sql_param(v) for k, v in params.items()}
    )
    assert rows(on_spark.toArrow()) == rows(duck)

    extras = {
        "statement": {"aggregation": REQUEST_ITEM_STATUS_SUMMARY.table},
        "params": {"window_start_date": {"date": "2026-03-01"}},
    }
    name, on_spark = compute(spark, extras, frame)
    duck = run_query(
        REQUEST_ITEM_STATUS_SUMMARY.sql(),
        {"request_item_status": items()},
        {"window_start_date": date(2026, 3, 1)},
    )
    assert name == REQUEST_ITEM_STATUS_SUMMARY.table and rows(on_spark.toArrow()) == rows(duck)

    extras = {"statement": {"view": "dates"}, "view_parameters": {"as_of_date": "2026-04-06"}}
    name, on_spark = compute(spark, extras, {})
    duck = compute_view(VIEWS_BY_NAME["dates"], {}, ViewParameters(date(2026, 4, 6)))
    assert rows(on_spark.toArrow()) == rows(duck)


def test_an_unknown_statement_is_refused(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="unknown statement"):
        compute(spark, {"statement": {"table": "x"}}, {})
