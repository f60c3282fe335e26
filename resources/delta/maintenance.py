"""Maintenance of Delta tables: OPTIMIZE, VACUUM, a new partition layout, deletes.

A mixin of ``DeltaTableStore`` (``store.py``): housekeeping's verbs, grouped apart from
the append and MERGE path every load takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deltalake import DeltaTable, write_deltalake

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from resources.delta.reads import TablePath
    from resources.delta.storage import LocalStorage, S3Storage


class DeltaMaintenance:
    """OPTIMIZE, VACUUM, repartition and delete."""

    if TYPE_CHECKING:
        storage: LocalStorage | S3Storage

        def exists(self, table: TablePath) -> bool: ...

        def table(self, table: TablePath, *, version: int | None = None) -> DeltaTable: ...

        def uri(self, table: TablePath) -> str: ...

    def delete(self, table: TablePath, predicate: str) -> dict[str, Any]:
        """Delete rows matching a SQL predicate."""
        result: dict[str, Any] = self.table(table).delete(predicate)
        return result

    def optimize(self, table: TablePath, *, z_order: list[str] | None = None) -> dict[str, Any]:
        """Compact small files (or z-order by columns)."""
        dt = self.table(table)
        metrics: dict[str, Any] = dt.optimize.z_order(z_order) if z_order else dt.optimize.compact()
        return metrics

    def keep_history(self, table: TablePath, *, days: int) -> bool:
        """Keep the table's log entries and superseded files for ``days`` (table properties).

        Delta drops log entries past ``delta.logRetentionDuration`` (30 days by default)
        when it checkpoints, after which older versions cannot be read even with their
        files present; ``delta.deletedFileRetentionDuration`` is what VACUUM honours.

        Returns:
            Whether the properties had to be changed.
        """
        interval = f"interval {days} days"
        return self.set_properties(
            table,
            {
                "delta.logRetentionDuration": interval,
                "delta.deletedFileRetentionDuration": interval,
            },
        )

    def set_properties(self, table: TablePath, properties: dict[str, str]) -> bool:
        """Record table properties (e.g. the disclosure rule a published table obeys).

        Properties survive overwrites; a commit is made only when one differs.

        Returns:
            Whether a property had to be changed.
        """
        dt = self.table(table)
        configuration = dt.metadata().configuration
        if all(configuration.get(k) == v for k, v in properties.items()):
            return False
        dt.alter.set_table_properties(properties, raise_if_not_exists=False)
        return True

    def vacuum(self, table: TablePath, *, retention_hours: int) -> list[str]:
        """Delete files no longer referenced and older than the retention period."""
        return self.table(table).vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
        )

    def repartition(
        self,
        table: TablePath,
        partition_by: list[str],
        *,
        fill: Callable[[pa.Table], pa.Table] | None = None,
    ) -> bool:
        """Lay an existing table out partitioned by these columns, if it is not already.

        One overwrite commit with the same rows (earlier versions stay readable, and
        app-transaction markers carry over). A missing table is left alone. ``fill``
        may complete the rows first, e.g. a new partition column that older rows lack.

        Returns:
            Whether the table was rewritten.
        """
        if not self.exists(table):
            return False
        dt = self.table(table)
        if list(dt.metadata().partition_columns) == list(partition_by):
            return False
        data = dt.to_pyarrow_table(filesystem=self.storage.filesystem(self.uri(table)))
        if fill is not None:
            data = fill(data)
        write_deltalake(
            dt,
            data,
            mode="overwrite",
            partition_by=partition_by,
            schema_mode="overwrite",
            storage_options=self.storage.options(),
        )
        return True
