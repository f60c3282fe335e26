"""Arrow datasets of a Delta table built from its log.

Hand-rolled because delta-rs's own dataset builder costs ~2 ms a file (it grew with a
long history) and its statistics guarantees break string filters on files MERGE wrote
as string_view; partition values from the log's add actions decide pruning instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError


def without_statistics_guarantees(
    dt: DeltaTable,
    dataset: pa_ds.FileSystemDataset,
    filesystem: pa_fs.FileSystem,
    *,
    skip: set[str] | frozenset[str] = frozenset(),
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> pa_ds.FileSystemDataset:
    """The same files, each guaranteed only its partition values.

    delta-rs attaches every file's min/max statistics to its fragment as a guarantee.
    Files written by a delta-rs MERGE store strings as ``string_view``, and a pushed-down
    string filter simplified against those guarantees fails in pyarrow ("no kernel
    matching (string, string_view)"). The files are already pruned by statistics when
    the dataset is built, and Parquet row-group statistics still apply in the scan, so
    only the partition values (which supply the partition columns) are kept. Files
    whose path is in ``skip`` are left out, and with ``keep``, so are those whose
    partition values (column -> typed value, None for the null partition) it refuses.
    """
    columns = dt.metadata().partition_columns
    schema = dataset.schema
    values: dict[str, dict[str, Any]] = {}
    if columns:
        actions = dt.get_add_actions(flatten=True)
        paths = actions.column("path").to_pylist()
        for c in columns:
            for path, value in zip(
                paths, actions.column(f"partition.{c}").to_pylist(), strict=True
            ):
                values.setdefault(unquote(path), {})[c] = value
    fmt = dataset.format
    fragments = []
    for fragment in dataset.get_fragments():
        if unquote(fragment.path) in skip:
            continue
        if keep is not None and not keep(values.get(unquote(fragment.path), {})):
            continue
        guarantee = None
        for c, value in values.get(unquote(fragment.path), {}).items():
            term = (
                pc.field(c).is_null()
                if value is None
                else pc.field(c) == pa.scalar(value).cast(schema.field(c).type)
            )
            guarantee = term if guarantee is None else guarantee & term
        if columns and guarantee is None:
            raise DeltaError(f"{fragment.path} is not in the table's log listing")
        fragments.append(
            fmt.make_fragment(fragment.path, filesystem, partition_expression=guarantee)
        )
    return pa_ds.FileSystemDataset(fragments, schema, fmt, filesystem)


def plain_files(dt: DeltaTable) -> bool:
    """Whether the table's Parquet files hold its rows as they are (reader version 1:
    no deletion vectors, no column mapping), so they can be read without delta-rs."""
    return bool(dt.protocol().min_reader_version == 1)


def dataset_from_log(
    dt: DeltaTable,
    filesystem: pa_fs.FileSystem,
    *,
    skip: set[str] | frozenset[str] = frozenset(),
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> pa_ds.FileSystemDataset:
    """The table's live files as a dataset built from the log's add actions alone.

    The same files, schema and partition guarantees as ``without_statistics_guarantees``
    gives, without asking delta-rs for its dataset: that builds a statistics expression
    per file, which costs more than the read when a table has many small partitions.
    Files in ``skip`` and those whose partition values ``keep`` refuses are left out.
    """
    schema = pa.schema(dt.schema().to_arrow())
    columns = list(dt.metadata().partition_columns)
    actions = dt.get_add_actions(flatten=True)
    paths = [unquote(path) for path in actions.column("path").to_pylist()]
    values = (
        [
            dict(zip(columns, row, strict=True))
            for row in zip(
                *[actions.column(f"partition.{c}").to_pylist() for c in columns], strict=True
            )
        ]
        if columns
        else [{} for _ in paths]
    )
    fmt = pa_ds.ParquetFileFormat()
    fragments = []
    for path, partition in zip(paths, values, strict=True):
        if path in skip or (keep is not None and not keep(partition)):
            continue
        guarantee = None
        for c, value in partition.items():
            term = (
                pc.field(c).is_null()
                if value is None
                else pc.field(c) == pa.scalar(value).cast(schema.field(c).type)
            )
            guarantee = term if guarantee is None else guarantee & term
        fragments.append(fmt.make_fragment(path, filesystem, partition_expression=guarantee))
    return pa_ds.FileSystemDataset(fragments, schema, fmt, filesystem)


def partition_filter(
    where: Any, partition_columns: Sequence[str]
) -> Callable[[dict[str, Any]], bool] | None:
    """Tuple filters on partition columns only, as a test of a file's partition values.

    None when ``where`` is anything else (statistics or a SQL predicate must decide).
    A null partition value fails every comparison, as in SQL. A value that cannot be
    compared keeps the file: this only prunes, the reader filters rows itself.
    """
    if where is None:
        return lambda values: True
    if not isinstance(where, list) or not all(
        isinstance(term, tuple)
        and len(term) == 3
        and term[0] in partition_columns
        and term[1] in _COMPARISONS
        for term in where
    ):
        return None
    terms = [
        (
            column,
            _COMPARISONS[op],
            [_comparable(v) for v in value] if op in ("in", "not in") else _comparable(value),
        )
        for column, op, value in where
    ]

    def keep(values: dict[str, Any]) -> bool:
        for column, compare, value in terms:
            stored = values.get(column)
            if stored is None:
                return False
            try:
                if not compare(_comparable(stored), value):
                    return False
            except TypeError:
                continue
        return True

    return keep


def _comparable(value: Any) -> Any:
    """Dates as ISO text, so a date partition compares with a date or its ISO string."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
