"""Export a feature table to a SQL feature store: column types and an upsert per dialect."""

from __future__ import annotations

from typing import Any


def sql_type(spark_type: str) -> Any:
    import sqlalchemy as sa

    return {
        "bigint": sa.BigInteger(),
        "int": sa.Integer(),
        "double": sa.Float(),
        "string": sa.String(length=255),
        "boolean": sa.Boolean(),
        "timestamp": sa.DateTime(timezone=True),
    }[spark_type]


def sql_row(row: dict[str, Any], *, naive: bool) -> dict[str, Any]:
    if not naive:
        return row
    return {
        k: v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo is not None else v
        for k, v in row.items()
    }


def upsert_rows(
    conn: Any, table: Any, rows: list[dict[str, Any]], dialect: str, keys: list[str]
) -> None:
    """Insert ``rows`` or update them where ``keys`` match."""
    import sqlalchemy as sa

    others = [c.name for c in table.columns if c.name not in keys]
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        stmt: Any = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=keys, set_={c: stmt.excluded[c] for c in others}
            ),
            rows,
        )
        return
    match = sa.and_(*(table.c[k] == sa.bindparam(f"key_{k}") for k in keys))
    conn.execute(table.delete().where(match), [{f"key_{k}": r[k] for k in keys} for r in rows])
    conn.execute(table.insert(), rows)
