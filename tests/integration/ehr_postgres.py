"""Put the synthetic EHR source into PostgreSQL, as a hospital replica would hold it.

The synthetic generator writes SQLite (``flowehr_pipelines.synthetic``); these helpers
mirror its tables into a PostgreSQL database with native column types, so ingestion
tests read a real PostgreSQL source through the same ``SqlSourceResource``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

EHR_TABLES = ("patients", "visits", "observations", "lab_results", "diagnoses")
_PG_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION"}


def create_database(server_url: str, name: str) -> str:
    """Create an empty database on the server; returns its URL."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def copy_sqlite_to_postgres(
    sqlite_path: Path, url: str, tables: Iterable[str] = EHR_TABLES
) -> dict[str, int]:
    """Replace the named tables in PostgreSQL with the SQLite source's rows.

    Returns:
        Rows copied per table.
    """
    copied: dict[str, int] = {}
    engine = sa.create_engine(url)
    with sqlite3.connect(sqlite_path) as source, engine.begin() as target:
        for table in tables:
            columns = source.execute(f"PRAGMA table_info({table})").fetchall()
            ddl = ", ".join(
                f'"{name}" {_PG_TYPES.get(kind.upper(), "TEXT")}' for _, name, kind, *_ in columns
            )
            target.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
            target.execute(sa.text(f'CREATE TABLE "{table}" ({ddl})'))
            names = [c[1] for c in columns]
            rows = [
                dict(zip(names, row, strict=True))
                for row in source.execute(f"SELECT * FROM {table}")
            ]
            if rows:
                placeholders = ", ".join(f":{n}" for n in names)
                quoted = ", ".join(f'"{n}"' for n in names)
                target.execute(
                    sa.text(f'INSERT INTO "{table}" ({quoted}) VALUES ({placeholders})'), rows
                )
            copied[table] = len(rows)
    engine.dispose()
    return copied
