"""Every query the EHR loader sends a source, compiled for SQL Server.

No SQL Server can run here and no driver (pyodbc) is installed, so SQL Server support
is tested at the dialect level only: a real bulk and changelog load runs against the
embedded SQLite source while every statement it executes is recorded, and each is then
compiled with SQLAlchemy's ``mssql`` dialect. This proves the statements are dialect
constructs SQLAlchemy can render for SQL Server (``TOP`` instead of ``LIMIT``, no
SQLite-only functions), not that a live server accepts them: docs/DEPLOYMENT.md says so.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mssql import pyodbc

from assets.ehr.bronze_loader import load_source_table
from assets.ehr.settings import SourceTable
from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from flowehr_pipelines.synthetic.ehr_schema import TABLES
from resources.sql_source import SqlSourceResource
from tests.lakes import local_store

SQLITE_ONLY = ("ifnull", "strftime", "julianday", "printf", "instr(", " glob ", "typeof(")


@pytest.fixture(scope="module")
def loader_statements(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The statements of a bulk load, then a changelog load after updates and deletes."""
    base: Path = tmp_path_factory.mktemp("mssql")
    db = base / "ehr.db"
    write_ehr_source(db, patients=20, days=2, start_date=date(2026, 3, 1), seed=3)
    source = SqlSourceResource(url=f"sqlite:///{db}")
    seen: list[Any] = []
    sa.event.listen(
        source.engine, "before_execute", lambda _conn, element, *_: seen.append(element)
    )
    delta = local_store(base / "lake")
    tables = [SourceTable(name=n, primary_key=[c[0]], batch_size=50) for n, c in TABLES.items()]
    for table in tables:
        load_source_table(source_name="ehr", table=table, source=source, delta=delta)
    apply_source_changes(db, seed=4, update_fraction=0.2, delete_fraction=0.05, new_patients=2)
    for table in tables:
        load_source_table(source_name="ehr", table=table, source=source, delta=delta)
    source.engine.dispose()
    return seen


def _mssql(element: Any) -> str:
    compiled = element.compile(dialect=pyodbc.dialect(), compile_kwargs={"literal_binds": True})
    return " ".join(str(compiled).split())


def test_the_loader_sends_only_sqlalchemy_constructs_no_raw_sql(loader_statements) -> None:
    assert loader_statements, "nothing recorded"
    raw = [s.text for s in loader_statements if isinstance(s, sa.TextClause)]
    assert raw == [], "raw SQL is not rendered per dialect: review it for SQL Server"


def test_every_loader_query_compiles_for_sql_server(loader_statements) -> None:
    shapes = {re.sub(r"\b\d+\b", "N", _mssql(s)) for s in loader_statements}
    for sql in shapes:
        assert " LIMIT " not in f" {sql} ", sql
        assert not any(f in sql.lower() for f in SQLITE_ONLY), sql
    batches = [s for s in shapes if s.startswith("SELECT TOP N ")]
    # Keyset batch queries for every table (named columns, then * once bronze has a
    # schema), each ordered by the change column.
    assert _tables(batches) == set(TABLES)
    assert any(s.startswith("SELECT TOP N * FROM") for s in batches)
    assert all(s.endswith("ORDER BY change_seq") for s in batches)
    assert all("CAST(change_seq AS BIGINT) = change_seq" in s for s in batches)
    heads = [s for s in shapes if s.startswith("SELECT max(")]
    assert _tables(heads) == set(TABLES)
    unusable = [s for s in shapes if "change_seq IS NULL OR" in s]
    assert _tables(unusable) == set(TABLES)


def _tables(queries: list[str]) -> set[str]:
    return {m.group(1) for q in queries if (m := re.search(r" FROM (\w+)", q))}


def test_changelog_batches_start_after_the_stored_number(loader_statements) -> None:
    after = {
        int(m.group(1))
        for s in loader_statements
        if (m := re.search(r"WHERE change_seq > (-?\d+) AND", _mssql(s)))
    }
    assert -1 in after  # the bulk load
    assert any(n > 0 for n in after)  # the changelog load
