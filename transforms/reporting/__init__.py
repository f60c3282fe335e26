"""Reporting SQL: projections and aggregations, run on an embedded engine over Arrow.

The SQL lives in ``.sql`` files beside this module, written in DuckDB's dialect and
kept portable: ``transpile`` turns it into Spark SQL for Databricks with sqlglot (and
the rewrites of ``spark_dialect``), and ``spark_sql`` runs it on a Spark session.
Parameters are ``:name`` placeholders filled with validated literals (numbers and
ISO dates only), because the same text must run on engines with different binding
syntax.
"""

from __future__ import annotations

import re
import tempfile
from datetime import date, datetime
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pa_ds
import sqlglot

from transforms.reporting.spark_dialect import SPARK, to_spark

SQL_DIR = Path(__file__).parent
_PLACEHOLDER = re.compile(r":([a-z_][a-z0-9_]*)\b")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

SqlParam = int | float | date | datetime
DUCKDB_MEMORY_LIMIT = "2GB"


def _spill_directory() -> str:
    """Where DuckDB spills past its memory limit (its default is ``.tmp`` in the cwd)."""
    directory = Path(tempfile.gettempdir()) / "flowehr-duckdb-spill"
    directory.mkdir(exist_ok=True)
    return str(directory).replace("'", "''")


@cache
def load_sql(name: str) -> str:
    """The text of ``<name>.sql``."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def _literal(value: SqlParam) -> str:
    if isinstance(value, bool):
        raise TypeError("boolean SQL parameters are not supported")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"unsupported SQL parameter type {type(value).__name__}")


def render(sql: str, params: dict[str, SqlParam]) -> str:
    """Fill ``:name`` placeholders; an unknown name is an error, not a silent NULL."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"SQL parameter :{name} was not given")
        return _literal(params[name])

    return _PLACEHOLDER.sub(replace, sql)


def run_sql(
    name: str, tables: dict[str, pa.Table | pa_ds.Dataset], params: dict[str, SqlParam]
) -> pa.Table:
    """Run a named SQL file over Arrow tables (see ``run_query``)."""
    return run_query(load_sql(name), tables, params)


def run_query(
    text: str, tables: dict[str, pa.Table | pa_ds.Dataset], params: dict[str, SqlParam]
) -> pa.Table:
    """Run SQL over Arrow tables on a private DuckDB connection.

    Args:
        text: the query, with ``:name`` placeholders.
        tables: Arrow tables or lazy datasets, registered under these names; of a
            dataset only the columns the SQL names are read (see ``_scan``).
        params: values for the placeholders.

    Returns:
        The query result as Arrow.
    """
    sql = render(text, params)
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        # Bounded, spilling to local temp files past the bound: a first load's window
        # query over 10M records otherwise takes ~3.6 GiB beside the Spark part's JVM.
        connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        connection.execute(f"SET temp_directory = '{_spill_directory()}'")
        for table_name, data in tables.items():
            connection.register(table_name, _scan(data, sql, table_name))
        result: pa.Table = connection.sql(sql).to_arrow_table()
        return result
    finally:
        connection.close()


def _scan(data: pa.Table | pa_ds.Dataset, sql: str, name: str) -> pa.Table | pa.RecordBatchReader:
    """A dataset's columns that the SQL names (every word of it is a candidate).

    The reporting SQL names every column it outputs (``*`` only inside CTEs whose
    later use is explicit, or over a table computed beforehand, never a dataset), so a
    column whose name never appears is never needed.
    Read here rather than pushed down by DuckDB: pyarrow has no comparison kernel for
    the ``string_view`` columns that delta-rs MERGE writes, so a pushed-down string
    filter fails; the files were already pruned when the dataset was made. A dataset
    the SQL reads once is streamed in batches, so a first load's whole window never
    sits in memory as Arrow beside DuckDB's own working set (at 10M records that
    was ~4.5 GiB); one it reads more than once is read whole, since a stream is read once.
    """
    if isinstance(data, pa.Table):
        return data
    words = _WORD.findall(sql)
    scanner = data.scanner(columns=[n for n in data.schema.names if n in set(words)])
    return scanner.to_reader() if words.count(name) == 1 else scanner.to_table()


def transpile(name: str, dialect: str = SPARK) -> str:
    """The named SQL in another engine's dialect (Spark SQL on Databricks)."""
    if dialect == SPARK:
        return to_spark(load_sql(name), pretty=True)
    statements = sqlglot.transpile(load_sql(name), read="duckdb", write=dialect, pretty=True)
    return ";\n".join(statements)
