"""One changelog batch read from a source table: typed by bronze's columns, rows that cannot be
typed set aside with a reason, one newest row per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from deltalake import DeltaTable

from assets.ehr.bronze_view import LOAD_COLUMN
from assets.ehr.settings import SourceTable
from resources.sql_source import SqlSourceResource, arrow_schema
from transforms.quality import duplicate_key_count

LOAD_QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_table", pa.string()),
        ("record_key", pa.string()),
        ("change_seq", pa.int64()),
        ("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class ChangeBatch:
    """One keyset batch: rows that fit the table's types, the rest, and where it ended."""

    rows: pa.Table
    rejected: pa.Table
    last_change: int | None


def load_quarantine_path(source_name: str, table: str) -> tuple[str, ...]:
    """Source rows bronze cannot type (text in a number column): kept here with a reason."""
    return ("bronze", source_name, f"load_quarantine_{table}")


def type_problem(row: dict[str, Any], schema: pa.Schema) -> str | None:
    """Why a row's values do not fit the schema (names the column, never the value)."""
    for field in schema:
        value = row.get(field.name)
        try:
            pa.array([value], type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError):
            return f"{field.name}: expected {field.type}, got {type(value).__name__}"
    return None


def typed_rows(
    rows: list[dict[str, Any]], schema: pa.Schema, *, table: SourceTable
) -> tuple[pa.Table, pa.Table]:
    """Rows as Arrow; a row with a value of the wrong type is set aside with a reason.

    SQLite (and a loosely typed replica) can hold text in a number column; one such
    value must not fail the load of every table of the source.
    """
    try:
        return pa.Table.from_pylist(rows, schema=schema), LOAD_QUARANTINE_SCHEMA.empty_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError):
        pass
    good, bad = [], []
    for row in rows:
        problem = type_problem(row, schema)
        if problem is None:
            good.append(row)
            continue
        key = "|".join(
            "(missing)" if row.get(k) is None else str(row[k]) for k in table.primary_key
        )
        change = row.get(table.change_column)
        bad.append(
            {
                "source_table": table.name,
                "record_key": key,
                "change_seq": change if isinstance(change, int) else None,
                "reason": f"wrong type in source: {problem}",
            }
        )
    return (
        pa.Table.from_pylist(good, schema=schema),
        pa.Table.from_pylist(bad, schema=LOAD_QUARANTINE_SCHEMA),
    )


def newest_per_key(batch: pa.Table, table: SourceTable) -> tuple[pa.Table, pa.Table]:
    """The newest row of each key, and older copies of a repeated key as quarantine rows.

    Rows of one load are all current, so a changelog batch that repeats a key (a source
    without a key constraint) would make both copies current and undo the change: the
    newest copy is the change, the older ones go to quarantine with a reason.
    """
    if batch.num_rows < 2 or _distinct_keys(batch, table.primary_key) == batch.num_rows:
        return batch, LOAD_QUARANTINE_SCHEMA.empty_table()
    keep: dict[tuple[Any, ...], int] = {}
    rows = batch.to_pylist()
    for i, row in enumerate(rows):
        key = tuple(row[k] for k in table.primary_key)
        if key not in keep or row[table.change_column] > rows[keep[key]][table.change_column]:
            keep[key] = i
    kept = sorted(keep.values())
    older = [
        {
            "source_table": table.name,
            "record_key": "|".join(str(v) for v in (rows[i][k] for k in table.primary_key)),
            "change_seq": rows[i][table.change_column],
            "reason": "duplicate primary key in source: a newer row with this key was loaded",
        }
        for i in sorted(set(range(len(rows))) - set(kept))
    ]
    return batch.take(kept), pa.Table.from_pylist(older, schema=LOAD_QUARANTINE_SCHEMA)


def _distinct_keys(batch: pa.Table, keys: Sequence[str]) -> int:
    """How many different keys a batch holds (NULL counts as one key)."""
    if len(keys) == 1:
        return int(pc.count_distinct(batch[keys[0]], mode="all").as_py())
    return batch.num_rows - duplicate_key_count(batch, list(keys))


def read_change_batch(
    source: SqlSourceResource,
    table: sa.Table | sa.TableClause,
    *,
    change_column: str,
    after: int,
    upto: int,
    limit: int,
    spec: SourceTable | None = None,
    connection: sa.Connection | None = None,
    schema: pa.Schema | None = None,
) -> ChangeBatch:
    """Rows with ``after < change <= upto``, oldest first, at most ``limit``.

    Keyset pagination on the change column keeps every batch an index range scan,
    however far into the table the load has got. With ``schema`` (bronze's columns) the
    source table need not be reflected first: every source column is selected, and only
    a column bronze has not seen yet sends the load to the source's definition for its
    type.
    """
    change: sa.ColumnClause[Any] = sa.column(change_column)
    selected = sa.select(table) if schema is None else sa.select(sa.text("*")).select_from(table)
    query = selected.where(change > after, change <= upto).order_by(change).limit(limit)
    with source.using(connection) as connected:
        result = connected.execute(query)
        names = list(result.keys())
        tuples = result.all()
        if schema is None or not set(names) <= set(schema.names):
            reflected = (
                table
                if isinstance(table, sa.Table)
                else source.reflect(table.name, connection=connected)
            )
            schema = arrow_schema(reflected)
    typed = _columnar(names, tuples, schema)
    if typed is not None:
        changes = typed[change_column]
        last = pc.max(changes).as_py() if changes.null_count < len(changes) else None
        return ChangeBatch(typed, LOAD_QUARANTINE_SCHEMA.empty_table(), last)
    rows = [dict(zip(names, row, strict=True)) for row in tuples]
    spec = spec or SourceTable(
        name=table.name,
        primary_key=[c.name for c in getattr(table, "primary_key", [])] or [change_column],
    )
    good, rejected = typed_rows(rows, schema, table=spec)
    changes = [r[change_column] for r in rows if isinstance(r.get(change_column), int)]
    return ChangeBatch(good, rejected, max(changes) if changes else None)


def _columnar(names: list[str], rows: Sequence[Any], schema: pa.Schema) -> pa.Table | None:
    """Rows as Arrow column by column (the fast path), or None when a value does not fit
    its column's type and the rows need checking one by one."""
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = []
    try:
        for field in schema:
            if field.name in names:
                values = columns[names.index(field.name)]
                arrays.append(pa.array(values, type=field.type))
            else:  # dropped from the source since bronze saw it
                arrays.append(pa.nulls(len(rows), type=field.type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError):
        return None
    return pa.Table.from_arrays(arrays, schema=schema)


def tombstone_count(batch: pa.Table, deleted_column: str | None) -> int:
    """Rows of a batch flagged as deleted in the source."""
    if deleted_column is None or deleted_column not in batch.column_names:
        return 0
    flags = batch[deleted_column]
    deleted = pc.fill_null(pc.not_equal(flags.cast(pa.int64()), 0), False)
    return int(pc.sum(deleted.cast(pa.int64())).as_py() or 0)


def bronze_schema(reflected: sa.Table) -> pa.Schema:
    """The source table's columns plus the load column that orders loads of one key."""
    return arrow_schema(reflected).append(pa.field(LOAD_COLUMN, pa.int64()))


def source_columns(snapshot: DeltaTable) -> pa.Schema:
    """Bronze's schema without the load column: the source columns bronze has seen."""
    schema = pa.schema(snapshot.schema().to_arrow())
    return pa.schema([f for f in schema if f.name != LOAD_COLUMN])
