"""Reading Delta tables under the lake root: open, read, lazy datasets, time travel.

A mixin of ``DeltaTableStore`` (``store.py``), so reads and writes share one resource and
one set of storage options; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from resources.delta.log_dataset import (
    dataset_from_log,
    partition_filter,
    plain_files,
    without_statistics_guarantees,
)
from resources.delta.log_health import COMMITS, naming_broken_log

if TYPE_CHECKING:
    from resources.delta.storage import LocalStorage, S3Storage

TablePath = Sequence[str]


class DeltaReads:
    """The read verbs of the store: a table's location, snapshot, rows and history."""

    if TYPE_CHECKING:
        storage: LocalStorage | S3Storage

    def uri(self, table: TablePath) -> str:
        """The table's location, ``<root>/<segment>/...``."""
        return "/".join([self.storage.root.rstrip("/"), *table])

    def _naming_broken_log(self, table: TablePath) -> AbstractContextManager[None]:
        """Failures caused by a broken log file of ``table`` raised as ``BrokenTableError``."""
        return naming_broken_log(lambda: self.storage.filesystem(self.uri(table)), table)

    def exists(self, table: TablePath) -> bool:
        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage.options())

    def table(self, table: TablePath, *, version: int | None = None) -> DeltaTable:
        """Open a table (optionally at an earlier version: time travel).

        Raises:
            BrokenTableError: when a file of the table's log is corrupt or a commit is
                empty, naming the table and the file (``log_health``).
        """
        uri = self.uri(table)
        with self._naming_broken_log(table):
            dt = DeltaTable(uri, version=version, storage_options=self.storage.options())
        COMMITS.check(self.storage.filesystem(uri), uri, table, dt.version())
        return dt

    def read(
        self,
        table: TablePath,
        *,
        columns: list[str] | None = None,
        filters: Any = None,
        version: int | None = None,
    ) -> pa.Table:
        """Read a table as Arrow; a missing table is an error, not an empty result.

        Raises:
            TableNotFoundError: when nothing has been written at the table's path.
        """
        # A native pyarrow filesystem: with delta-rs's Python file handler, pyarrow's
        # read-ahead threads can outlive the interpreter and abort the process at exit.
        dt = self.table(table, version=version)
        filesystem = self.storage.filesystem(self.uri(table))
        try:
            return dt.to_pyarrow_table(columns=columns, filters=filters, filesystem=filesystem)
        except pa.ArrowNotImplementedError:
            if not filters:
                raise
        # delta-rs MERGE writes string columns as string_view, so a merged table mixes
        # string and string_view files, and pyarrow cannot push a string filter down onto
        # the view files' statistics. Read unfiltered (cast to the table schema), then filter.
        data = dt.to_pyarrow_table(filesystem=filesystem)
        data = data.filter(pq.filters_to_expression(filters))
        return data.select(columns) if columns is not None else data

    def dataset(
        self,
        table: TablePath,
        *,
        where: Any = None,
        version: int | None = None,
        added_after: int | None = None,
    ) -> pa_ds.Dataset:
        """A lazy view of a table: read only the files and columns a query needs.

        ``where`` (tuple filters or a SQL predicate) prunes files by partition values
        and file statistics before anything is opened; the caller then reads just the
        columns it uses. Scan filters on string columns need care: see
        ``without_statistics_guarantees``.

        Args:
            table: the table path.
            where: file pruning predicate.
            version: read this version (default: the latest).
            added_after: only files added after this version (and still live): the
                new data of an append-only table since a reader last looked.

        Raises:
            DeltaError: when ``added_after`` names a version whose log is gone.
        """
        dt = self.table(table, version=version)
        filesystem = self.storage.filesystem(self.uri(table))
        seen: set[str] = set()
        if added_after is not None:
            earlier = self.table(table, version=added_after).get_add_actions(flatten=True)
            seen = {unquote(path) for path in earlier.column("path").to_pylist()}
        keep = partition_filter(where, dt.metadata().partition_columns)
        if keep is not None and plain_files(dt):
            # Partition values alone decide: prune from the log, which costs far less than
            # delta-rs building a statistics expression for every file of a long history.
            return dataset_from_log(dt, filesystem, skip=seen, keep=keep)
        pruned = dt.to_pyarrow_dataset(file_pruning_predicate=where, filesystem=filesystem)
        return without_statistics_guarantees(dt, pruned, filesystem, skip=seen)

    def head(self, table: TablePath, rows: int) -> pa.Table:
        """The first rows of a table, reading no more files than needed."""
        dataset = self.table(table).to_pyarrow_dataset(
            filesystem=self.storage.filesystem(self.uri(table))
        )
        return dataset.head(rows)

    def read_or_none(self, table: TablePath, **kwargs: Any) -> pa.Table | None:
        """Read a table, or None when it has never been written."""
        try:
            return self.read(table, **kwargs)
        except TableNotFoundError:
            return None

    def version(self, table: TablePath) -> int | None:
        return self.table(table).version() if self.exists(table) else None

    def applied_version(self, table: TablePath, app_id: str) -> int | None:
        """The last version recorded for ``app_id`` by an idempotent write, if any."""
        if not self.exists(table):
            return None
        return self.table(table).transaction_version(app_id)

    def file_count(self, table: TablePath) -> int:
        return len(self.table(table).file_uris())

    def stored_file_count(self, table: TablePath) -> int:
        """Data files physically present under the table (VACUUM removes unreferenced ones)."""
        fs = self.storage.filesystem(self.uri(table))
        infos = fs.get_file_info(pa_fs.FileSelector("", recursive=True))
        return sum(
            1
            for info in infos
            if info.type == pa_fs.FileType.File
            and info.path.endswith(".parquet")
            and not info.path.startswith("_delta_log")
        )

    def history(self, table: TablePath, *, limit: int | None = None) -> list[dict[str, Any]]:
        return self.table(table).history(limit)

    def table_or_none(self, table: TablePath) -> DeltaTable | None:
        """The table's newest snapshot, or None when nothing has been written there."""
        try:
            return self.table(table)
        except TableNotFoundError:
            return None
