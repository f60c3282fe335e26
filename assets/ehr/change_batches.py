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
from resources.delta.store import DeltaTableStore
from resources.sql_source import SqlSourceResource, arrow_column, arrow_schema, whole_part
from transforms.quality import duplicate_key_count

LOAD_QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_table", pa.string()),
        ("record_key", pa.string()),
        ("change_seq", pa.int64()),
        ("reason", pa.string()),
    ]
)


_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError)


@dataclass(frozen=True)
class ChangeBatch:
    """One keyset batch: rows that fit the table's types, the rest, where it ended, and
    the bronze columns the source no longer has."""

    rows: pa.Table
    rejected: pa.Table
    last_change: int | None
    dropped_columns: tuple[str, ...] = ()


def load_quarantine_path(source_name: str, table: str) -> tuple[str, ...]:
    """Source rows bronze cannot type (text in a number column): kept here with a reason."""
    return ("bronze", source_name, f"load_quarantine_{table}")


def quarantine(delta: DeltaTableStore, source_name: str, table: str, rows: pa.Table) -> None:
    """Set rows aside in the table's load quarantine, each (key, change) once.

    Insert-only and planned first, so setting aside the same rows again on the next
    load commits nothing (a missing change number matches itself).
    """
    if rows.num_rows:
        delta.merge(
            load_quarantine_path(source_name, table),
            rows,
            keys=["record_key", "change_seq"],
            matched=(),
            null_safe_keys=True,
            prune=True,
        )


def record_key(row: dict[str, Any], table: SourceTable) -> str:
    """A row's primary key as one text value (``(missing)`` for a NULL part)."""
    return "|".join("(missing)" if row.get(k) is None else str(row[k]) for k in table.primary_key)


def change_problem(value: Any, column: str) -> str | None:
    """Why a change number cannot order a changelog load (names the kind, never a text value)."""
    if value is None:
        return f"{column} is missing"
    if isinstance(value, bool) or whole_part(value) is None:
        return f"{column} is not a number ({type(value).__name__})"
    if whole_part(value) != value:
        return f"{column} is not a whole number ({value})"
    return None


def unusable_change_rows(rows: list[dict[str, Any]], table: SourceTable) -> pa.Table:
    """Quarantine rows for source rows whose change number no load can read."""
    return pa.Table.from_pylist(
        [
            {
                "source_table": table.name,
                "record_key": record_key(row, table),
                "change_seq": None,
                "reason": "unusable change number in source: "
                + (change_problem(row.get(table.change_column), table.change_column) or "?"),
            }
            for row in rows
        ],
        schema=LOAD_QUARANTINE_SCHEMA,
    )


def type_problem(row: dict[str, Any], schema: pa.Schema) -> str | None:
    """Why a row's values do not fit the schema (names the column, never the value)."""
    for field in schema:
        value = row.get(field.name)
        try:
            arrow_column([value], field.type)
        except _CONVERSION_ERRORS:
            if isinstance(value, float) and pa.types.is_integer(field.type):
                return f"{field.name}: expected {field.type}, got a fraction (would be truncated)"
            return f"{field.name}: expected {field.type}, got {type(value).__name__}"
    return None


def typed_rows(
    rows: list[dict[str, Any]], schema: pa.Schema, *, table: SourceTable
) -> tuple[pa.Table, pa.Table]:
    """Rows as Arrow; a row with a value of the wrong type is set aside with a reason.

    SQLite (and a loosely typed replica) can hold text in a number column, or a
    fraction in an integer one; one such value must not fail the load of every table of
    the source, nor be stored changed.
    """
    names = list(schema.names)
    good, bad = [], []
    for row in rows:
        problem = type_problem(row, schema)
        if problem is None:
            good.append(tuple(row.get(n) for n in names))
            continue
        change = row.get(table.change_column)
        bad.append(
            {
                "source_table": table.name,
                "record_key": record_key(row, table),
                "change_seq": whole_part(change) if change == whole_part(change) else None,
                "reason": f"wrong type in source: {problem}",
            }
        )
    typed = _columnar(names, good, schema)
    if typed is None:  # every value fits alone, but a column mixes kinds (1 and "2")
        columns = list(zip(*good, strict=True))
        typed = pa.Table.from_arrays(
            [
                pa.concat_arrays([arrow_column([v], f.type) for v in columns[i]])
                for i, f in enumerate(schema)
            ],
            schema=schema,
        )
    return typed, pa.Table.from_pylist(bad, schema=LOAD_QUARANTINE_SCHEMA)


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
            "record_key": record_key(rows[i], table),
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
    however far into the table the load has got. Only whole change numbers are read
    (``SqlSourceResource.unusable_changes`` sets the others aside), so a batch always
    ends on a changelog number. With ``schema`` (bronze's columns) the source table need
    not be reflected first: every source column is selected, and only a column bronze
    has not seen yet sends the load to the source's definition for its type; a bronze
    column the source no longer has is named in ``dropped_columns``.
    """
    change: sa.ColumnClause[Any] = sa.column(change_column)
    selected = sa.select(table) if schema is None else sa.select(sa.text("*")).select_from(table)
    whole = sa.cast(change, sa.BigInteger) == change
    query = selected.where(change > after, change <= upto, whole).order_by(change).limit(limit)
    with source.using(connection) as connected:
        result = connected.execute(query)
        names = list(result.keys())
        tuples = result.all()
        dropped = tuple(n for n in (schema.names if schema else []) if n not in names)
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
        return ChangeBatch(typed, LOAD_QUARANTINE_SCHEMA.empty_table(), last, dropped)
    rows = [dict(zip(names, row, strict=True)) for row in tuples]
    spec = spec or SourceTable(
        name=table.name,
        primary_key=[c.name for c in getattr(table, "primary_key", [])] or [change_column],
    )
    good, rejected = typed_rows(rows, schema, table=spec)
    changes = [whole_part(r.get(change_column)) for r in rows]
    known = [c for c in changes if c is not None]
    return ChangeBatch(good, rejected, max(known) if known else None, dropped)


def _columnar(names: list[str], rows: Sequence[Any], schema: pa.Schema) -> pa.Table | None:
    """Rows as Arrow column by column (the fast path), or None when a value does not fit
    its column's type (or would change to fit it) and the rows need checking one by one."""
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = []
    try:
        for field in schema:
            if field.name in names:
                values = columns[names.index(field.name)]
                arrays.append(arrow_column(values, field.type))
            else:  # dropped from the source since bronze saw it (the loader's policy)
                arrays.append(pa.nulls(len(rows), type=field.type))
    except _CONVERSION_ERRORS:
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
