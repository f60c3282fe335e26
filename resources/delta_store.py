"""Delta tables under one lake root, read and written with delta-rs.

delta-spark's JVM jars cannot be installed here, so every Delta read and write goes
through delta-rs (``deltalake``) and Spark exchanges data with it as Arrow. Each
table has this one writer engine, which keeps concurrent-writer conflicts out.

Tables live at ``<root>/<zone>/<name...>``, addressed by the same path segments as
their Dagster asset key (``["bronze", "ehr", "patients"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pa_fs
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError
from pydantic import Field

TablePath = Sequence[str]


class LocalStorage(dg.Config):
    """Delta tables in a local directory."""

    provider: Literal["local"] = "local"
    root: str = Field(description="Absolute path of the lake root.")

    def options(self) -> dict[str, str]:
        return {}

    def filesystem(self, uri: str) -> pa_fs.FileSystem:
        return pa_fs.SubTreeFileSystem(uri, pa_fs.LocalFileSystem())


class S3Storage(dg.Config):
    """Delta tables under an ``s3://bucket/prefix`` on AWS or an S3-compatible store."""

    provider: Literal["s3"] = "s3"
    root: str = Field(description="s3://bucket/prefix of the lake root.")
    region: str = "eu-west-2"
    endpoint_url: str | None = None
    allow_http: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def options(self) -> dict[str, str]:
        opts = {"AWS_REGION": self.region, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        if self.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        if self.access_key_id and self.secret_access_key:
            opts["AWS_ACCESS_KEY_ID"] = self.access_key_id
            opts["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        return opts

    def filesystem(self, uri: str) -> pa_fs.FileSystem:
        endpoint = self.endpoint_url or None
        s3 = pa_fs.S3FileSystem(
            region=self.region,
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme="http" if self.allow_http else "https",
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
        )
        return pa_fs.SubTreeFileSystem(uri.removeprefix("s3://"), s3)


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
        return self.table(table, version=version).to_pyarrow_table(
            columns=columns,
            filters=filters,
            filesystem=self.storage.filesystem(self.uri(table)),
        )

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


def _commit_properties(app_id: str | None, app_version: int | None) -> CommitProperties | None:
    if app_id is None or app_version is None:
        return None
    return CommitProperties(app_transactions=[Transaction(app_id=app_id, version=app_version)])
