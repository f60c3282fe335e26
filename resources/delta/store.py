"""Delta tables under one lake root, read and written with delta-rs.

delta-spark's JVM jars cannot be installed here, so every Delta read and write goes
through delta-rs (``deltalake``) and Spark exchanges data with it as Arrow. Each
table has this one writer engine, which keeps concurrent-writer conflicts out.

Tables live at ``<root>/<zone>/<name...>``, addressed by the same path segments as
their Dagster asset key (``["bronze", "ehr", "patients"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from pydantic import Field

from resources.delta.log_dataset import (
    _log_dataset,
    _partition_filter,
    _plain_files,
    _without_statistics_guarantees,
)
from resources.delta.merge_planner import (
    _partition_column,
    _partition_predicate,
    _rows_that_act,
    _rows_that_act_in_partitions,
)
from resources.delta.storage import LocalStorage, S3Storage

TablePath = Sequence[str]


class DeltaTableStore(dg.ConfigurableResource):
    """Read, append, MERGE, OPTIMIZE and VACUUM Delta tables under the lake root."""

    storage: LocalStorage | S3Storage = Field(discriminator="provider")

    def uri(self, table: TablePath) -> str:
        """The table's location, ``<root>/<segment>/...``."""
        return "/".join([self.storage.root.rstrip("/"), *table])

    def exists(self, table: TablePath) -> bool:
        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage.options())

    def table(self, table: TablePath, *, version: int | None = None) -> DeltaTable:
        """Open a table (optionally at an earlier version: time travel)."""
        return DeltaTable(self.uri(table), version=version, storage_options=self.storage.options())

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
        ``_without_statistics_guarantees``.

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
        keep = _partition_filter(where, dt.metadata().partition_columns)
        if keep is not None and _plain_files(dt):
            # Partition values alone decide: prune from the log, which costs far less than
            # delta-rs building a statistics expression for every file of a long history.
            return _log_dataset(dt, filesystem, skip=seen, keep=keep)
        pruned = dt.to_pyarrow_dataset(file_pruning_predicate=where, filesystem=filesystem)
        return _without_statistics_guarantees(dt, pruned, filesystem, skip=seen)

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

    def append(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        partition_by: list[str] | None = None,
        app_id: str | None = None,
        app_version: int | None = None,
    ) -> int:
        """Append rows; with ``app_id`` the commit also records an idempotency marker.

        Returns:
            The table version written.
        """
        write_deltalake(
            self.uri(table),
            data,
            mode="append",
            partition_by=partition_by,
            schema_mode="merge",
            storage_options=self.storage.options(),
            commit_properties=_commit_properties(app_id, app_version),
        )
        return self.table(table).version()

    def append_marked(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        markers: Sequence[str],
        partition_by: list[str] | None = None,
    ) -> int:
        """Append rows and record each marker as an application transaction, atomically.

        A later ``applied_version(table, marker)`` finds the marker only if the rows
        committed, which makes "ingest this file once" a single atomic step.
        """
        write_deltalake(
            self.uri(table),
            data,
            mode="append",
            partition_by=partition_by,
            schema_mode="merge",
            storage_options=self.storage.options(),
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id=m, version=1) for m in markers]
            ),
        )
        return self.table(table).version()

    def overwrite(
        self, table: TablePath, data: pa.Table, *, partition_by: list[str] | None = None
    ) -> int:
        """Replace a table's contents in one commit (earlier versions stay readable)."""
        write_deltalake(
            self.uri(table),
            data,
            mode="overwrite",
            partition_by=partition_by,
            schema_mode="overwrite",
            storage_options=self.storage.options(),
        )
        return self.table(table).version()

    def repartition(self, table: TablePath, partition_by: list[str]) -> bool:
        """Lay an existing table out partitioned by these columns, if it is not already.

        One overwrite commit with the same rows (earlier versions stay readable, and
        app-transaction markers carry over). A missing table is left alone.

        Returns:
            Whether the table was rewritten.
        """
        if not self.exists(table):
            return False
        dt = self.table(table)
        if list(dt.metadata().partition_columns) == list(partition_by):
            return False
        data = dt.to_pyarrow_table(filesystem=self.storage.filesystem(self.uri(table)))
        write_deltalake(
            dt,
            data,
            mode="overwrite",
            partition_by=partition_by,
            schema_mode="overwrite",
            storage_options=self.storage.options(),
        )
        return True

    def applied_version(self, table: TablePath, app_id: str) -> int | None:
        """The last version recorded for ``app_id`` by an idempotent write, if any."""
        if not self.exists(table):
            return None
        return self.table(table).transaction_version(app_id)

    def merge(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        keys: Sequence[str],
        matched_condition: str | None = None,
        updates: dict[str, str] | None = None,
        delete_condition: str | None = None,
        partition_by: list[str] | None = None,
        null_safe_keys: bool = False,
        app_id: str | None = None,
        app_version: int | None = None,
    ) -> dict[str, Any]:
        """Upsert rows by key: update matched rows, insert new ones.

        The source aliases are ``s`` (incoming) and ``t`` (table), as in the SQL this
        replaces: ``WHEN MATCHED AND s.timestamp > t.timestamp THEN UPDATE``.

        Args:
            table: the table path.
            data: incoming rows; must be unique on ``keys``.
            keys: the columns that identify a row.
            matched_condition: extra condition a matched row must meet to be updated.
            updates: column -> SQL expression for matched rows; default: every column
                from the source (``COALESCE(s.x, t.x)`` keeps a value newer records omit).
            delete_condition: matched rows meeting it are deleted instead (tombstones).
            partition_by: partition columns when the table is created.
            null_safe_keys: match keys with ``<=>`` so NULL dimensions match each other.
            app_id: with ``app_version``, record an idempotency marker in the commit.
            app_version: see ``app_id``.

        Returns:
            delta-rs merge metrics (``num_target_rows_inserted``, ``..._updated``, ...).
        """
        if not self.exists(table):
            if delete_condition is None:
                # Merging into an empty table inserts every row: one plain write is enough.
                write_deltalake(
                    self.uri(table),
                    data,
                    mode="append",
                    partition_by=partition_by,
                    storage_options=self.storage.options(),
                    commit_properties=_commit_properties(app_id, app_version),
                )
                return {
                    "num_source_rows": data.num_rows,
                    "num_target_rows_inserted": data.num_rows,
                    "num_target_rows_updated": 0,
                    "num_target_rows_deleted": 0,
                }
            write_deltalake(
                self.uri(table),
                data.schema.empty_table(),
                mode="append",
                partition_by=partition_by,
                storage_options=self.storage.options(),
            )
        op = "IS NOT DISTINCT FROM" if null_safe_keys else "="
        predicate = " AND ".join(f"(t.`{k}` {op} s.`{k}`)" for k in keys)
        merger = self.table(table).merge(
            data,
            predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=_commit_properties(app_id, app_version),
        )
        if delete_condition is not None:
            merger = merger.when_matched_delete(predicate=delete_condition)
        if updates is None:
            merger = merger.when_matched_update_all(predicate=matched_condition)
        else:
            merger = merger.when_matched_update(updates=updates, predicate=matched_condition)
        not_matched = None if delete_condition is None else f"NOT ({delete_condition})"
        metrics: dict[str, Any] = merger.when_not_matched_insert_all(
            predicate=not_matched
        ).execute()
        return metrics

    def delete(self, table: TablePath, predicate: str) -> dict[str, Any]:
        """Delete rows matching a SQL predicate."""
        result: dict[str, Any] = self.table(table).delete(predicate)
        return result

    def optimize(self, table: TablePath, *, z_order: list[str] | None = None) -> dict[str, Any]:
        """Compact small files (or z-order by columns)."""
        dt = self.table(table)
        metrics: dict[str, Any] = dt.optimize.z_order(z_order) if z_order else dt.optimize.compact()
        return metrics

    def vacuum(self, table: TablePath, *, retention_hours: int) -> list[str]:
        """Delete files no longer referenced and older than the retention period."""
        return self.table(table).vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
        )

    def file_count(self, table: TablePath) -> int:
        return len(self.table(table).file_uris())

    def history(self, table: TablePath, *, limit: int | None = None) -> list[dict[str, Any]]:
        return self.table(table).history(limit)

    def replace_if_version(
        self, table: TablePath, data: pa.Table, *, expected_version: int | None
    ) -> bool:
        """Compare-and-swap: replace a table's contents only if nobody committed since.

        The commit is tried once, at ``expected_version + 1``, with no conflict retries.
        Delta log entries are written put-if-absent (a no-replace rename locally, a
        conditional put on S3), so of two writers that read the same version exactly
        one wins. Small coordination tables (locks) are built on this.

        Args:
            table: the table path.
            data: the table's complete new contents.
            expected_version: the version the caller read; None = the table must not
                exist yet.

        Returns:
            True when this write committed, False when another writer got there first.
        """
        options = self.storage.options()  # on S3: put-if-absent log commits
        once = CommitProperties(max_commit_retries=0)
        try:
            if expected_version is None:
                write_deltalake(
                    self.uri(table),
                    data,
                    mode="error",
                    storage_options=options,
                    commit_properties=once,
                )
            else:
                snapshot = DeltaTable(
                    self.uri(table), version=expected_version, storage_options=options
                )
                write_deltalake(
                    snapshot,
                    data,
                    mode="overwrite",
                    schema_mode="overwrite",
                    storage_options=options,
                    commit_properties=once,
                )
        except CommitFailedError:
            return False
        except DeltaError:
            if expected_version is None and self.exists(table):
                return False  # created by a concurrent writer
            raise
        return True

    def sync(self, table: TablePath, data: pa.Table, *, keys: Sequence[str]) -> dict[str, int]:
        """Make a table hold exactly ``data``, rewriting only rows that changed.

        A full recomputation written as a diff: one MERGE updates rows whose values
        differ, inserts new keys and deletes keys no longer present, so an unchanged
        input commits nothing and the change data feed (enabled here) lists real
        changes only. A changed column set or type replaces the table instead.

        Args:
            table: the table path.
            data: the complete new contents; must be unique on ``keys``.
            keys: the columns that identify a row.

        Returns:
            Counts under ``num_target_rows_inserted``, ``..._updated`` and ``..._deleted``.
        """
        cdf = {"delta.enableChangeDataFeed": "true"}
        if self.exists(table):
            dt = self.table(table)
            if _same_columns(pa.schema(dt.schema().to_arrow()), data.schema):
                if dt.metadata().configuration.get("delta.enableChangeDataFeed") != "true":
                    dt.alter.set_table_properties(cdf)
                    dt = self.table(table)
                predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
                values = [c for c in data.column_names if c not in keys]
                changed = _any_of([f"t.`{c}` IS DISTINCT FROM s.`{c}`" for c in values])
                merger = dt.merge(data, predicate, source_alias="s", target_alias="t")
                if changed:
                    merger = merger.when_matched_update_all(predicate=changed)
                metrics = (
                    merger.when_not_matched_insert_all()
                    .when_not_matched_by_source_delete()
                    .execute()
                )
                return {
                    name: int(metrics.get(name, 0))
                    for name in (
                        "num_target_rows_inserted",
                        "num_target_rows_updated",
                        "num_target_rows_deleted",
                    )
                }
            previous = dt.count()
        else:
            previous = 0
        write_deltalake(
            self.uri(table),
            data,
            mode="overwrite",
            schema_mode="overwrite",
            configuration=cdf,
            storage_options=self.storage.options(),
        )
        if self.table(table).metadata().configuration.get("delta.enableChangeDataFeed") != "true":
            self.table(table).alter.set_table_properties(cdf)
        return {
            "num_target_rows_inserted": data.num_rows,
            "num_target_rows_updated": 0,
            "num_target_rows_deleted": previous,
        }

    def append_once(
        self,
        table: TablePath,
        batches: Sequence[tuple[Sequence[str], pa.Table]],
        *,
        partition_by: list[str] | None = None,
    ) -> list[str]:
        """Append each batch unless its first marker is already in the table, atomically.

        The markers are checked and the rows committed against one snapshot, so a
        concurrent writer that commits the same markers first makes this commit fail
        (Delta's concurrent-transaction check) instead of duplicating rows; the batches
        are then re-checked against the new snapshot once.

        Args:
            table: the table path.
            batches: (markers, rows) pairs; a batch counts as applied when its first
                marker is recorded. All markers of written batches are recorded.
            partition_by: partition columns when the table is created.

        Returns:
            The first marker of every batch this call wrote.
        """
        for attempt in range(2):
            snapshot = self.table(table) if self.exists(table) else None
            todo = [
                (markers, rows)
                for markers, rows in batches
                if snapshot is None or snapshot.transaction_version(markers[0]) is None
            ]
            if not todo:
                return []
            data = pa.concat_tables([rows for _, rows in todo], promote_options="default")
            properties = CommitProperties(
                app_transactions=[
                    Transaction(app_id=marker, version=1)
                    for markers, _ in todo
                    for marker in markers
                ]
            )
            try:
                write_deltalake(
                    snapshot if snapshot is not None else self.uri(table),
                    data,
                    mode="append",
                    partition_by=partition_by,
                    schema_mode="merge",
                    storage_options=self.storage.options(),
                    commit_properties=properties,
                )
            except CommitFailedError:
                if attempt:
                    raise
                continue
            return [markers[0] for markers, _ in todo]
        return []

    def merge_with_clauses(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        keys: Sequence[str],
        matched: Sequence[tuple[str | None, dict[str, str]]],
        null_safe_keys: bool = False,
        partition_by: list[str] | None = None,
        markers: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Upsert with several ``WHEN MATCHED AND <condition> THEN UPDATE`` clauses.

        The clauses are tried in order and the first whose condition holds updates
        the row, as in SQL MERGE; unmatched rows are inserted. Aliases are ``s``
        (incoming) and ``t`` (table).

        Args:
            table: the table path.
            data: incoming rows; must be unique on ``keys``.
            keys: the columns that identify a row.
            matched: (condition, column -> SQL expression) pairs, in order.
            null_safe_keys: match keys with ``IS NOT DISTINCT FROM``.
            partition_by: partition columns when the table is created.
            markers: app-transaction id -> version recorded in the same commit (say,
                which source version this upsert covers); when no row changes, they
                are committed alone, and when they are recorded already, nothing is.

        Returns:
            delta-rs merge metrics.
        """
        properties = _markers(markers)
        if not self.exists(table):
            write_deltalake(
                self.uri(table),
                data,
                mode="append",
                partition_by=partition_by,
                storage_options=self.storage.options(),
                commit_properties=properties,
            )
            return {
                "num_source_rows": data.num_rows,
                "num_target_rows_inserted": data.num_rows,
                "num_target_rows_updated": 0,
                "num_target_rows_deleted": 0,
            }
        dt = self.table(table)
        source_rows = data.num_rows
        filesystem = self.storage.filesystem(self.uri(table))
        conditions = [condition for condition, _ in matched]
        column = _partition_column(dt, data, keys)
        scope: list[Any] | None = None
        if column is None:
            data = _rows_that_act(
                dt,
                data,
                filesystem,
                keys=keys,
                conditions=conditions,
                null_safe_keys=null_safe_keys,
            )
        else:
            data, scope = _rows_that_act_in_partitions(
                dt,
                data,
                filesystem,
                keys=keys,
                conditions=conditions,
                null_safe_keys=null_safe_keys,
                column=column,
            )
        if data.num_rows == 0:
            # Nothing to insert or update: no scan of the target's files, and no commit
            # unless there are new markers to record.
            if markers and any(dt.transaction_version(k) != v for k, v in markers.items()):
                dt.create_write_transaction(
                    [], mode="append", schema=dt.schema(), commit_properties=properties
                )
            return {
                "num_source_rows": source_rows,
                "num_target_rows_inserted": 0,
                "num_target_rows_updated": 0,
                "num_target_rows_deleted": 0,
            }
        op = "IS NOT DISTINCT FROM" if null_safe_keys else "="
        predicate = " AND ".join(f"(t.`{k}` {op} s.`{k}`)" for k in keys)
        if column is not None and scope is not None:
            if not scope:
                # Every acting row is a new key: an append, and no stored file is rewritten.
                write_deltalake(
                    dt,
                    data,
                    mode="append",
                    schema_mode="merge",
                    storage_options=self.storage.options(),
                    commit_properties=properties,
                )
                return {
                    "num_source_rows": source_rows,
                    "num_target_rows_inserted": data.num_rows,
                    "num_target_rows_updated": 0,
                    "num_target_rows_deleted": 0,
                }
            # Only the partitions holding the rows to update are scanned and rewritten.
            within = _partition_predicate(column, scope)
            if within is not None:
                predicate = f"{predicate} AND ({within})"
        merger = dt.merge(
            data,
            predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=properties,
        )
        for condition, updates in matched:
            merger = merger.when_matched_update(updates=updates, predicate=condition)
        metrics: dict[str, Any] = merger.when_not_matched_insert_all().execute()
        return {**metrics, "num_source_rows": source_rows}

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

    def replace_groups(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        keys: Sequence[str],
        group_column: str,
        groups: Sequence[Any],
    ) -> dict[str, int]:
        """Make the rows of some groups (say, visits) hold exactly ``data``, in one commit.

        The incremental form of ``sync``: rows of other groups are untouched; rows of
        the named groups are updated where they differ, inserted where new and deleted
        where ``data`` no longer has their key. One MERGE, so every version of the table
        is complete and the counts are real.

        Args:
            table: the table path; created from ``data`` when missing.
            data: the new rows of the named groups; unique on ``keys``.
            keys: the columns that identify a row.
            group_column: the column naming a row's group.
            groups: the groups replaced (groups absent from ``data`` lose every row).

        Returns:
            Counts under ``num_target_rows_inserted``, ``..._updated`` and ``..._deleted``.
        """
        counts = dict.fromkeys(
            ("num_target_rows_inserted", "num_target_rows_updated", "num_target_rows_deleted"), 0
        )
        if not self.exists(table):
            write_deltalake(self.uri(table), data, storage_options=self.storage.options())
            return {**counts, "num_target_rows_inserted": data.num_rows}
        if not groups:
            return counts
        key_list = list(keys)
        existing = self.read(table, columns=key_list, filters=[(group_column, "in", list(groups))])
        incoming_keys = data.select(key_list).cast(existing.schema)
        doomed = existing.join(incoming_keys, keys=key_list, join_type="left anti")
        if data.num_rows == 0 and doomed.num_rows == 0:
            return counts
        marker = "_replace_groups_delete"
        source = pa.concat_tables(
            [
                data.append_column(marker, pa.array([False] * data.num_rows, pa.bool_())),
                doomed.append_column(marker, pa.array([True] * doomed.num_rows, pa.bool_())),
            ],
            promote_options="default",
        )
        values = {c: f"s.`{c}`" for c in data.column_names}
        changed = _any_of(
            [f"t.`{c}` IS DISTINCT FROM s.`{c}`" for c in data.column_names if c not in key_list]
        )
        keep = f"NOT s.`{marker}`"
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in key_list)
        metrics = (
            self.table(table)
            .merge(source, predicate, source_alias="s", target_alias="t")
            .when_matched_delete(predicate=f"s.`{marker}`")
            .when_matched_update(
                updates=values, predicate=f"{keep} AND ({changed})" if changed else keep
            )
            .when_not_matched_insert(updates=values, predicate=keep)
            .execute()
        )
        return {name: int(metrics.get(name, 0)) for name in counts}


def _any_of(conditions: Sequence[str]) -> str:
    """OR the conditions as a balanced tree: a flat chain of many ORs overflows the
    SQL parser's recursion limit in delta-rs for wide tables."""
    if len(conditions) <= 2:
        return " OR ".join(f"({c})" for c in conditions)
    middle = len(conditions) // 2
    return f"({_any_of(conditions[:middle])}) OR ({_any_of(conditions[middle:])})"


def _same_columns(current: pa.Schema, incoming: pa.Schema) -> bool:
    """Same column names and types, in any order and ignoring nullability."""
    return {f.name: str(f.type) for f in current} == {f.name: str(f.type) for f in incoming}


def _markers(markers: dict[str, int] | None) -> CommitProperties | None:
    if not markers:
        return None
    return CommitProperties(
        app_transactions=[Transaction(app_id=k, version=v) for k, v in markers.items()]
    )


def _commit_properties(app_id: str | None, app_version: int | None) -> CommitProperties | None:
    if app_id is None or app_version is None:
        return None
    return CommitProperties(app_transactions=[Transaction(app_id=app_id, version=app_version)])


def logged_row_count(dt: DeltaTable) -> int:
    """Rows in a table's current snapshot, from the file statistics in its log (no scan)."""
    actions = dt.get_add_actions(flatten=True)
    if "num_records" not in actions.column_names:
        return 0
    return sum(v for v in actions.column("num_records").to_pylist() if v is not None)
