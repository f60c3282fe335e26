"""Each SQL source: reachable with the configured login, every table there, with its keys.

The engine is built here with a connect timeout, so an unreachable host costs seconds,
not a driver's default minutes; the password is masked in every message.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from assets.ehr.settings import DataSourceConnection, SourceTable
from flowehr_pipelines.config import Settings
from flowehr_pipelines.doctor.findings import Finding, fail, first_line, ok

_TIMEOUT_ARGS = {
    "postgresql": lambda seconds: {"connect_timeout": int(seconds)},
    "mssql": lambda seconds: {"timeout": int(seconds)},
}


def check_source(
    settings: Settings,
    connection: DataSourceConnection,
    *,
    timeout: float,
    clock: list[tuple[str, datetime]],
) -> list[Finding]:
    """Connect once, then compare the configured tables with the database's own.

    Args:
        clock: receives a PostgreSQL server's time, for the clock check.
    """
    check = f"source {connection.name}"
    url = make_url(settings.source_url(connection))
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return [fail(check, f"no database at {url.database} (run `flowehr demo-data` first)")]
    password = settings.secret(connection.password_env)
    if password:
        url = url.set(password=password)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() in _TIMEOUT_ARGS:
        connect_args = _TIMEOUT_ARGS[url.get_backend_name()](max(1, timeout))
    try:
        engine = sa.create_engine(url, connect_args=connect_args)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        return [fail(check, f"{shown}: unusable URL or missing driver ({first_line(exc)})")]
    try:
        with engine.connect() as conn:
            if url.get_backend_name() == "postgresql":
                clock.append((check, conn.execute(sa.select(sa.func.now())).scalar_one()))
            inspector = sa.inspect(conn)
            present = set(inspector.get_table_names())
            findings = [
                finding
                for table in connection.tables
                for finding in _table_findings(check, inspector, table, present)
            ]
    except sa.exc.SQLAlchemyError as exc:
        reason = first_line(getattr(exc, "orig", None) or exc)
        return [fail(check, f"cannot connect to {shown}: {reason}")]
    finally:
        engine.dispose()
    if any(finding.failed for finding in findings):
        return findings
    return [
        *findings,
        ok(
            check,
            f"{shown}: {len(connection.tables)} table(s) with their primary-key and change columns",
        ),
    ]


def _table_findings(
    check: str, inspector: Any, table: SourceTable, present: set[str]
) -> list[Finding]:
    """Problems of one table only; an empty list means the table is as configured."""
    if table.name not in present:
        return [fail(check, f"table '{table.name}' not found")]
    columns = {column["name"] for column in inspector.get_columns(table.name)}
    found = []
    name = table.name
    missing_key = [c for c in table.primary_key if c not in columns]
    if missing_key:
        found.append(fail(check, f"table '{name}' has no primary-key column(s) {missing_key}"))
    if table.change_column not in columns:
        found.append(fail(check, f"table '{name}' has no change column '{table.change_column}'"))
    if table.deleted_column and table.deleted_column not in columns:
        # The load tolerates it, but deletions in the source then never reach silver.
        found.append(
            Finding(check, "warn", f"table '{table.name}' has no '{table.deleted_column}' column")
        )
    declared = (inspector.get_pk_constraint(table.name) or {}).get("constrained_columns") or []
    if declared and not missing_key and sorted(declared) != sorted(table.primary_key):
        found.append(
            fail(
                check,
                f"table '{table.name}': configured primary key {table.primary_key} differs "
                f"from the database's {declared}",
            )
        )
    return found
