"""Which incoming rows a MERGE would act on, found before the MERGE runs.

delta-rs's MERGE scans and rewrites every file a matched row touches; finding the rows
that would insert or update first (a DuckDB join of the keys and condition columns,
only in the partitions the incoming rows name) lets a cycle that changes nothing commit
nothing, and one of only new keys append.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pa_fs
from deltalake import DeltaTable

from resources.delta.log_dataset import dataset_from_log, plain_files, without_statistics_guarantees

_TARGET_COLUMN = re.compile(r"\bt\.`([^`]+)`")


def _acts_query(
    dt: DeltaTable,
    data: pa.Table,
    keys: Sequence[str],
    conditions: Sequence[str | None],
    null_safe_keys: bool,
) -> tuple[list[str], str, str, str] | None:
    """The rows-that-act join's pieces: target columns to read, join, conditions, select.

    None when it cannot be decided before the MERGE: an unconditional clause, or a
    condition naming a column the target lacks (schema evolution).
    """
    if any(c is None for c in conditions):
        return None
    wanted = list(
        dict.fromkeys([*keys, *_TARGET_COLUMN.findall(" ".join(c or "" for c in conditions))])
    )
    target_columns = set(dt.schema().to_arrow().names)
    if not set(wanted) <= target_columns or not set(keys) <= set(data.column_names):
        return None
    op = "IS NOT DISTINCT FROM" if null_safe_keys else "="
    on = " AND ".join(f's."{k}" {op} t."{k}"' for k in keys)
    acts = " OR ".join(f"({c})".replace("`", '"') for c in conditions if c)
    return wanted, on, acts, ", ".join(f'"{c}"' for c in wanted)


def rows_that_act(
    dt: DeltaTable,
    data: pa.Table,
    filesystem: pa_fs.FileSystem,
    *,
    keys: Sequence[str],
    conditions: Sequence[str | None],
    null_safe_keys: bool,
) -> pa.Table:
    """The source rows a MERGE would insert or update; the others change nothing.

    A matched row whose every ``WHEN MATCHED`` condition is false is a no-op in the
    MERGE, so dropping it beforehand changes no result. The test runs in DuckDB over
    only the key and condition columns of the target (a projected Arrow scan), which
    costs far less than delta-rs joining every column of both sides; the MERGE then
    runs on the rows that act, or not at all. Falls back to the whole source when a
    condition names a column the target lacks (schema evolution) or a clause is
    unconditional.
    """
    if data.num_rows == 0:
        return data
    query = _acts_query(dt, data, keys, conditions, null_safe_keys)
    if query is None:
        return data
    wanted, on, acts, columns = query
    indexed = data.append_column("__row", pa.array(range(data.num_rows), pa.int64()))
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("s", indexed)
        target = without_statistics_guarantees(
            dt, dt.to_pyarrow_dataset(filesystem=filesystem), filesystem
        )
        # Read the few columns here: pushed-down filters fail on string_view files.
        connection.register("target", target.to_table(columns=wanted))
        rows = connection.sql(
            f"SELECT DISTINCT s.__row FROM s LEFT JOIN "  # nosec B608: identifiers from code or validated config; values bound
            f"(SELECT {columns}, TRUE AS __matched FROM target) AS t ON {on} "
            f"WHERE t.__matched IS NULL OR {acts or 'FALSE'}"
        ).to_arrow_table()
    except duckdb.Error:
        return data  # a condition DuckDB cannot evaluate: let the MERGE decide every row
    finally:
        connection.close()
    return data.take(rows.sort_by("__row").column("__row"))


def partition_column(dt: DeltaTable, data: pa.Table, keys: Sequence[str]) -> str | None:
    """The table's one partition column, when the incoming rows carry it and it is no key.

    Such a MERGE can be confined to the partitions that hold the rows it updates.
    """
    columns = dt.metadata().partition_columns
    if len(columns) != 1 or columns[0] in keys or columns[0] not in data.column_names:
        return None
    return str(columns[0])


def rows_that_act_in_partitions(
    dt: DeltaTable,
    data: pa.Table,
    filesystem: pa_fs.FileSystem,
    *,
    keys: Sequence[str],
    conditions: Sequence[str | None],
    null_safe_keys: bool,
    column: str,
) -> tuple[pa.Table, list[Any] | None]:
    """``rows_that_act`` on a partitioned table, and the partitions a MERGE must scan.

    Where each incoming key is stored comes from the key and partition columns of the
    whole table (the partition column costs nothing: it is in the file paths), so a row
    whose partition value changes is still found where it is; the condition columns are
    then read only from the partitions that hold incoming keys. Returns the rows that
    act and the stored partition values of those that update (empty: only inserts), or
    None for the partitions when every partition must be scanned.
    """
    if data.num_rows == 0:
        return data, []
    query = _acts_query(dt, data, keys, conditions, null_safe_keys)
    if query is None:
        return data, None
    wanted, on, acts, columns = query
    part = f'"{column}"'
    indexed = data.append_column("__row", pa.array(range(data.num_rows), pa.int64()))
    if not plain_files(dt):
        return data, None  # deletion vectors or column mapping: let the MERGE decide
    everything = dataset_from_log(dt, filesystem)
    stored = everything.to_table(columns=list(dict.fromkeys([*keys, column])))
    touched = _partitions_holding(stored, data, keys, column)
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        if touched:
            subset = dataset_from_log(
                dt, filesystem, keep=lambda values: values.get(column) in touched
            )
            target = subset.to_table(columns=list(dict.fromkeys([*wanted, column])))
        else:
            schema = everything.schema
            target = pa.schema(
                [schema.field(c) for c in dict.fromkeys([*wanted, column])]
            ).empty_table()
        connection.register("s", indexed)
        connection.register("target", target)
        rows = connection.sql(
            f"SELECT DISTINCT s.__row, t.__part, t.__matched IS NOT NULL AS __updates "  # nosec B608: identifiers from code or validated config; values bound
            f"FROM s LEFT JOIN "
            f"(SELECT {columns}, {part} AS __part, TRUE AS __matched FROM target) AS t ON {on} "
            f"WHERE t.__matched IS NULL OR {acts or 'FALSE'}"
        ).to_arrow_table()
    except duckdb.Error:
        return data, None  # a condition DuckDB cannot evaluate: the MERGE decides every row
    finally:
        connection.close()
    acting = data.take(rows.sort_by("__row").column("__row"))
    updating = rows.filter(rows.column("__updates")).column("__part").to_pylist()
    return acting, list(dict.fromkeys(updating))


def _partitions_holding(
    stored: pa.Table, data: pa.Table, keys: Sequence[str], column: str
) -> set[Any]:
    """The partition values of the stored rows whose key is among the incoming rows'.

    A single key is a hash lookup (nulls match nulls, as ``IS NOT DISTINCT FROM``
    would: a null key is looked up too, giving more partitions, never fewer). With a
    compound key, every partition is answered.
    """
    if len(keys) != 1:
        return set(pc.unique(stored.column(column)).to_pylist())
    incoming = data.column(keys[0]).combine_chunks()
    found = pc.is_in(
        stored.column(keys[0]),
        value_set=incoming.cast(stored.schema.field(keys[0]).type),
        skip_nulls=False,
    )
    return set(pc.unique(stored.column(column).filter(found)).to_pylist())


def partition_predicate(column: str, values: list[Any]) -> str | None:
    """``t.<column>`` within these partition values, as delta-rs SQL; None when a value
    has no literal form here (then the MERGE scans every partition)."""
    literals = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, datetime):
            return None
        if isinstance(value, date):
            literals.append(f"DATE '{value.isoformat()}'")
        elif isinstance(value, bool):
            return None
        elif isinstance(value, int):
            literals.append(str(value))
        elif isinstance(value, str):
            literals.append("'" + value.replace("'", "''") + "'")
        else:
            return None
    field = f"t.`{column}`"
    terms = [f"{field} IN ({', '.join(literals)})"] if literals else []
    if None in values:
        terms.append(f"{field} IS NULL")
    return " OR ".join(terms)
