"""The DuckDB peer: one reporting cycle written the way a DuckDB user would write it.

It reads the same bronze Parquet files, runs the product's own projection and
aggregation SELECTs, and upserts into tables of a DuckDB database file with DuckDB's
``MERGE INTO``. It lives in ``bench/`` only: it is the bar the product's reporting
cycle (delta-rs MERGE into Delta tables) is measured against, not product code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from transforms.cdc import months_before, window_start
from transforms.reporting import load_sql, render
from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS, ProjectionSpec
from transforms.reporting.views import (
    AS_OF_DATE,
    EMAIL_FILTER_CLIENT,
    QUERIES,
    SMS_NUDGE_CLIENT,
    VIEWS,
)

KEY = "benchmark-key-not-secret-0123456789"
NEWER = 's."timestamp" > t."timestamp" OR (s."timestamp" = t."timestamp" AND s._rank > t._rank)'


def _projection_select(spec: ProjectionSpec, tz: str) -> str:
    select = render(load_sql(spec.table), {})
    extra = [
        f"CAST(timezone('{tz}', {source}) AS DATE) AS {target}"
        for source, target in spec.local_dates
    ]
    extra += [f"sha256('{KEY}' || {source}) AS {target}" for source, target in spec.hashed]
    hidden = ", ".join(source for source, _ in spec.hashed)
    exclude = f" EXCLUDE ({hidden})" if hidden else ""
    return f"SELECT *{exclude}{''.join(', ' + e for e in extra)} FROM ({select})"


def run_cycle(
    connection: duckdb.DuckDBPyConnection,
    bronze_files: list[str],
    *,
    as_of: datetime,
    projection_days: int,
    aggregation_days: int | None,
    aggregation_months: int = 1,
    tz: str = "Europe/London",
) -> None:
    """Pass 1 then pass 2; the first call (no tables yet) creates the tables."""
    start = window_start(as_of, projection_days)
    files = ", ".join(f"'{f}'" for f in bronze_files)
    connection.execute(
        "CREATE OR REPLACE TEMP VIEW transaction_history AS SELECT * FROM "
        f"read_parquet([{files}], hive_partitioning = true, union_by_name = true) "
        f"WHERE landing_date >= '{start.isoformat()}'"
    )
    existing = {row[0] for row in connection.execute("SHOW TABLES").fetchall()}
    for spec in PROJECTIONS:
        select = _projection_select(spec, tz)
        if spec.table not in existing:
            connection.execute(f"CREATE TABLE {spec.table} AS {select}")
            continue
        connection.execute(
            f"MERGE INTO {spec.table} AS t USING ({select}) AS s "
            f"ON t.{spec.key} = s.{spec.key} "
            f"WHEN MATCHED AND ({NEWER}) THEN UPDATE WHEN NOT MATCHED THEN INSERT"
        )
    agg_start = (
        months_before(as_of, aggregation_months)
        if aggregation_days is None
        else window_start(as_of, aggregation_days)
    )
    for agg in AGGREGATIONS:
        select = render(agg.sql(), {"window_start_date": agg_start})
        if agg.batch_clients_only:
            # No batch client is configured in the benchmark, as by default: the table
            # exists (the views read it) and stays empty.
            if agg.table not in existing:
                connection.execute(
                    f"CREATE TABLE {agg.table} AS SELECT * FROM ({select}) WHERE false"
                )
            continue
        if agg.table not in existing:
            connection.execute(f"CREATE TABLE {agg.table} AS {select}")
            continue
        on = " AND ".join(f"t.{d} IS NOT DISTINCT FROM s.{d}" for d in agg.dimensions)
        sets = [f"{n} = greatest(t.{n}, s.{n})" for n in agg.totals]
        sets += [f"{n} = s.{n}" for n in agg.current]
        connection.execute(
            f"MERGE INTO {agg.table} AS t USING ({select}) AS s ON {on} "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(sets)} WHEN NOT MATCHED THEN INSERT"
        )


def run_views(connection: duckdb.DuckDBPyConnection, *, as_of: datetime) -> None:
    """Pass 3: each NHS Notify view and query rebuilt as a table, in dependency order."""
    for name in (SMS_NUDGE_CLIENT, EMAIL_FILTER_CLIENT):
        connection.execute(f"CREATE OR REPLACE TEMP TABLE {name} (clientid VARCHAR)")
    day = as_of.astimezone(UTC).date()
    for spec in (*VIEWS, *QUERIES):
        select = render(spec.sql(), {AS_OF_DATE: day})
        connection.execute(f"CREATE OR REPLACE TABLE {spec.name} AS {select}")


def open_database(path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(path))
    connection.execute("SET TimeZone = 'UTC'")
    return connection
