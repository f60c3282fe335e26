"""Compare-and-swap commits: how small coordination tables (ETL state, source locks) change.

A mixin of ``DeltaTableStore``. ``replace_if_version`` is one commit with no conflict
retries, so of two writers that read the same version exactly one wins; ``swap`` reads,
applies a change and commits that way, re-reading when another writer won. Both
``assets.ehr.etl_state`` and ``assets.ehr.etl_lock`` change their tables only so.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from resources.delta.log_health import BrokenTableError

if TYPE_CHECKING:
    from resources.delta.reads import TablePath
    from resources.delta.storage import LocalStorage, S3Storage


class SwapConflictError(CommitFailedError):
    """Other writers committed first, every time ``swap`` tried."""


class DeltaCompareAndSwap:
    """``replace_if_version`` and ``swap``."""

    if TYPE_CHECKING:
        storage: LocalStorage | S3Storage

        def uri(self, table: TablePath) -> str: ...

        def exists(self, table: TablePath) -> bool: ...

        def table_or_none(self, table: TablePath) -> DeltaTable | None: ...

        def _naming_broken_log(self, table: TablePath) -> AbstractContextManager[None]: ...

    def replace_if_version(
        self, table: TablePath, data: pa.Table, *, expected_version: int | None
    ) -> bool:
        """Replace a table's contents only if it is still at ``expected_version``.

        A compare-and-swap commit with no conflict retries: of two writers that read
        the same version, exactly one commits. On S3 the log commit is a put-if-absent.

        Args:
            table: the table path.
            data: the table's complete new contents.
            expected_version: the version the caller read; None = the table must not
                exist yet.

        Returns:
            True when this write committed, False when another writer got there first.
        """
        options = self.storage.options()
        once = CommitProperties(max_commit_retries=0)
        try:
            with self._naming_broken_log(table):
                self._put(table, data, expected_version, options, once)
        except CommitFailedError:
            return False
        except BrokenTableError:
            raise
        except DeltaError:
            if expected_version is None and self.exists(table):
                return False  # created by a concurrent writer
            raise
        return True

    def _put(
        self,
        table: TablePath,
        data: pa.Table,
        expected_version: int | None,
        options: dict[str, str],
        once: CommitProperties,
    ) -> None:
        """The write of ``replace_if_version``: create, or overwrite the expected version."""
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

    def swap(
        self,
        table: TablePath,
        change: Callable[[pa.Table | None], pa.Table | None],
        *,
        attempts: int,
        known: tuple[int, pa.Table] | None = None,
    ) -> tuple[int | None, pa.Table | None]:
        """Replace a small table by ``change(current rows)`` in one compare-and-swap commit.

        ``change`` gets the rows at the version read (None: no table yet) and returns the
        new contents, or None to leave the table as it is; it may raise to refuse. When
        another writer commits first, the table is re-read and ``change`` applied again.

        Args:
            table: the table path.
            change: current rows -> new rows.
            attempts: how many reads and commits to try.
            known: a (version, rows) the caller read already, used for the first attempt.

        Returns:
            The version the table is now at and the rows it holds there (``change``'s
            result, or the rows read; None, None: still no table), so a caller can keep
            them as the next ``known``.

        Raises:
            SwapConflictError: other writers committed first ``attempts`` times in a row.
        """
        for attempt in range(attempts):
            version: int | None
            if attempt == 0 and known is not None:
                version, rows = known
            else:
                version, rows = self.versioned_rows(table)
            updated = change(rows)
            if updated is None:
                return version, rows
            if self.replace_if_version(table, updated, expected_version=version):
                # No conflict retries: the commit is the version after the one read.
                return (0 if version is None else version + 1), updated
        raise SwapConflictError(
            f"{'/'.join(table)}: {attempts} concurrent commits in a row; the change was not stored"
        )

    def versioned_rows(self, table: TablePath) -> tuple[int | None, pa.Table | None]:
        """A table's version and its rows at that very version (None, None: no table)."""
        snapshot = self.table_or_none(table)
        if snapshot is None:
            return None, None
        filesystem = self.storage.filesystem(self.uri(table))
        return snapshot.version(), snapshot.to_pyarrow_dataset(filesystem=filesystem).to_table()
