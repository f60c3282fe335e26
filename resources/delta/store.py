"""Delta tables under one lake root, read and written with delta-rs: the only Delta writer.

Every Delta write of the project goes through ``DeltaTableStore`` (Spark exchanges data
with it as Arrow), so each table has one writer engine and one place that knows how a
commit records markers, retries or refuses. The write verbs are few and keyword-only,
in the spirit of delta-rs: ``append`` (optionally marked, optionally once per marker),
``merge`` (one clause builder, ``Matched``), ``sync`` (make rows hold exactly this),
``overwrite``, and the compare-and-swap pair ``replace_if_version`` / ``swap``
(``cas.py``). Each
returns one ``WriteMetrics``. Reads and maintenance live in the mixins beside it.

Tables live at ``<root>/<zone>/<name...>``, addressed by the same path segments as
their Dagster asset key (``["bronze", "ehr", "patients"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError
from pydantic import Field

from resources.delta.cas import DeltaCompareAndSwap, SwapConflictError
from resources.delta.maintenance import DeltaMaintenance
from resources.delta.merge_planner import (
    partition_column,
    partition_predicate,
    rows_that_act,
    rows_that_act_in_partitions,
)
from resources.delta.metrics import DELETED, INSERTED, UPDATED, WriteMetrics
from resources.delta.reads import DeltaReads, TablePath
from resources.delta.storage import LocalStorage, S3Storage

__all__ = ["DeltaTableStore", "Marked", "Matched", "SwapConflictError", "TablePath", "WriteMetrics"]

Markers = Mapping[str, int] | Sequence[str]


@dataclass(frozen=True)
class Marked:
    """Rows and the markers that identify them (say, the landed file they came from)."""

    markers: Sequence[str]
    rows: pa.Table


@dataclass(frozen=True)
class Matched:
    """One ``WHEN MATCHED [AND where] THEN ...`` clause of a MERGE (aliases ``s`` and ``t``).

    ``set`` maps a column to a SQL expression; None updates every column from the
    source. ``delete`` deletes the matched row instead (and such source rows are never
    inserted: tombstones).
    """

    where: str | None = None
    set: Mapping[str, str] | None = None
    delete: bool = False


class DeltaTableStore(DeltaReads, DeltaCompareAndSwap, DeltaMaintenance, dg.ConfigurableResource):
    """Read, append, MERGE, OPTIMIZE and VACUUM Delta tables under the lake root."""

    storage: LocalStorage | S3Storage = Field(discriminator="provider")

    def append(
        self,
        table: TablePath,
        data: pa.Table | Sequence[Marked],
        *,
        partition_by: list[str] | None = None,
        markers: Markers | None = None,
        once: bool = False,
        at: DeltaTable | None = None,
    ) -> WriteMetrics:
        """Append rows in one commit, recording ``markers`` as app transactions in it.

        Args:
            table: the table path; created when missing.
            data: the rows, or ``Marked`` batches whose markers go into the same commit.
            partition_by: partition columns when the table is created.
            markers: ids recorded with the commit (a sequence: version 1 each; a mapping:
                id -> version), so ``applied_version`` finds them only if the rows landed.
            once: skip each ``Marked`` batch whose first marker the table holds already,
                checked against the snapshot the commit is made on: a concurrent writer of
                the same markers makes the commit fail instead of duplicating rows, and the
                batches are re-checked against the new snapshot once.
            at: an opened snapshot of the table to commit on (saves a log replay).

        Returns:
            Rows inserted, the version written and (``once``) the first marker of every
            batch written.
        """
        batches = [Marked((), data)] if isinstance(data, pa.Table) else list(data)
        if once and not all(batch.markers for batch in batches):
            raise ValueError("append(once=True) takes Marked batches, each with a marker")
        for attempt in range(2):
            snapshot = at if attempt == 0 else None  # a retry reads the table afresh
            if snapshot is None and once:
                snapshot = self.table_or_none(table)
            todo = batches
            if once and snapshot is not None:
                todo = [b for b in batches if snapshot.transaction_version(b.markers[0]) is None]
            if not todo:
                return WriteMetrics.rows(version=None if snapshot is None else snapshot.version())
            rows = pa.concat_tables([b.rows for b in todo], promote_options="default")
            recorded = _transactions(markers, [m for b in todo for m in b.markers])
            target = snapshot if snapshot is not None else self.uri(table)
            try:
                with self._naming_broken_log(table):
                    write_deltalake(
                        target,
                        rows,
                        mode="append",
                        partition_by=partition_by,
                        schema_mode="merge",
                        storage_options=self.storage.options(),
                        commit_properties=recorded,
                    )
            except CommitFailedError:
                if attempt or not once:
                    raise
                continue
            return WriteMetrics.rows(
                inserted=rows.num_rows,
                version=target.version()
                if isinstance(target, DeltaTable)
                else lambda: self.table(table).version(),
                applied=tuple(b.markers[0] for b in todo if b.markers),
            )
        return WriteMetrics.rows()

    def overwrite(
        self, table: TablePath, data: pa.Table, *, partition_by: list[str] | None = None
    ) -> WriteMetrics:
        """Replace a table's contents in one commit (earlier versions stay readable)."""
        with self._naming_broken_log(table):
            write_deltalake(
                self.uri(table),
                data,
                mode="overwrite",
                partition_by=partition_by,
                schema_mode="overwrite",
                storage_options=self.storage.options(),
            )
        return WriteMetrics.rows(
            inserted=data.num_rows, version=lambda: self.table(table).version()
        )

    def merge(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        keys: Sequence[str],
        matched: Sequence[Matched] = (Matched(),),
        null_safe_keys: bool = False,
        partition_by: list[str] | None = None,
        markers: Mapping[str, int] | None = None,
        prune: bool = False,
    ) -> WriteMetrics:
        """Upsert rows by key: the first ``matched`` clause that holds acts, new keys insert.

        Args:
            table: the table path; created from ``data`` when missing.
            data: incoming rows; must be unique on ``keys``.
            keys: the columns that identify a row.
            matched: the ``WHEN MATCHED`` clauses, tried in order as in SQL MERGE.
            null_safe_keys: match keys with ``IS NOT DISTINCT FROM`` (NULL dimensions).
            partition_by: partition columns when the table is created.
            markers: app-transaction id -> version recorded in the same commit.
            prune: find the rows that would act first (``merge_planner``): a cycle that
                changes nothing commits nothing (but new markers), one of only new keys
                appends, and on a partitioned table the MERGE scans only the partitions
                holding rows it updates. Not with delete clauses.

        Returns:
            delta-rs merge metrics (``num_target_rows_inserted``, ``..._updated``, ...).
        """
        deletes = [clause.where or "TRUE" for clause in matched if clause.delete]
        properties = _transactions(markers)
        source_rows = data.num_rows
        if not self.exists(table):
            if not deletes:
                # Merging into a missing table inserts every row: one plain write is enough.
                self.append(table, data, partition_by=partition_by, markers=markers)
                return WriteMetrics.rows(inserted=data.num_rows, source=source_rows)
            write_deltalake(
                self.uri(table),
                data.schema.empty_table(),
                mode="append",
                partition_by=partition_by,
                storage_options=self.storage.options(),
            )
        dt = self.table(table)
        op = "IS NOT DISTINCT FROM" if null_safe_keys else "="
        predicate = " AND ".join(f"(t.`{k}` {op} s.`{k}`)" for k in keys)
        if prune:
            if deletes:
                raise ValueError("merge(prune=True) cannot plan delete clauses")
            planned = self._prune(
                table, dt, data, keys, matched, null_safe_keys, markers, predicate
            )
            if isinstance(planned, WriteMetrics):
                return planned
            data, predicate = planned
        merger = dt.merge(
            data,
            predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=properties,
        )
        for clause in matched:
            if clause.delete:
                merger = merger.when_matched_delete(predicate=clause.where)
            elif clause.set is None:
                merger = merger.when_matched_update_all(predicate=clause.where)
            else:
                merger = merger.when_matched_update(
                    updates=dict(clause.set), predicate=clause.where
                )
        not_deleted = f"NOT ({_any_of(deletes)})" if deletes else None
        metrics = merger.when_not_matched_insert_all(predicate=not_deleted).execute()
        return WriteMetrics({**metrics, "num_source_rows": source_rows})

    def _prune(
        self,
        table: TablePath,
        dt: DeltaTable,
        data: pa.Table,
        keys: Sequence[str],
        matched: Sequence[Matched],
        null_safe_keys: bool,
        markers: Mapping[str, int] | None,
        predicate: str,
    ) -> WriteMetrics | tuple[pa.Table, str]:
        """The rows a MERGE must see and its predicate, or the result when it need not run."""
        source_rows = data.num_rows
        filesystem = self.storage.filesystem(self.uri(table))
        conditions = [clause.where for clause in matched]
        column = partition_column(dt, data, keys)
        scope: list[Any] | None = None
        if column is None:
            data = rows_that_act(
                dt,
                data,
                filesystem,
                keys=keys,
                conditions=conditions,
                null_safe_keys=null_safe_keys,
            )
        else:
            data, scope = rows_that_act_in_partitions(
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
                    [], mode="append", schema=dt.schema(), commit_properties=_transactions(markers)
                )
            return WriteMetrics.rows(source=source_rows)
        if column is not None and scope is not None:
            if not scope:
                # Every acting row is a new key: an append, and no stored file is rewritten.
                self.append(table, data, markers=markers, at=dt)
                return WriteMetrics.rows(inserted=data.num_rows, source=source_rows)
            # Only the partitions holding the rows to update are scanned and rewritten.
            within = partition_predicate(column, scope)
            if within is not None:
                predicate = f"{predicate} AND ({within})"
        return data, predicate

    def sync(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        keys: Sequence[str],
        group_column: str | None = None,
        groups: Sequence[Any] | None = None,
    ) -> WriteMetrics:
        """Make a table (or some groups of its rows) hold exactly ``data``, in one commit.

        A full recomputation written as a diff: one MERGE updates rows whose values
        differ, inserts new keys and deletes keys no longer present, so an unchanged
        input commits nothing. Whole tables get the change data feed (which then lists
        real changes only), and a changed column set or type replaces the table. With
        ``group_column`` and ``groups`` only the rows of those groups (say, visits) are
        synced; other groups' rows are untouched, and groups absent from ``data`` lose
        every row.

        Returns:
            Counts under ``num_target_rows_inserted``, ``..._updated`` and ``..._deleted``.
        """
        if group_column is not None:
            return self._sync_groups(table, data, keys=keys, column=group_column, groups=groups)
        cdf = {"delta.enableChangeDataFeed": "true"}
        previous = 0
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
                return WriteMetrics(metrics).only(INSERTED, UPDATED, DELETED)
            previous = dt.count()
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
        return WriteMetrics.rows(inserted=data.num_rows, deleted=previous)

    def _sync_groups(
        self,
        table: TablePath,
        data: pa.Table,
        *,
        keys: Sequence[str],
        column: str,
        groups: Sequence[Any] | None,
    ) -> WriteMetrics:
        if not self.exists(table):
            write_deltalake(self.uri(table), data, storage_options=self.storage.options())
            return WriteMetrics.rows(inserted=data.num_rows)
        if not groups:
            return WriteMetrics.rows()
        key_list = list(keys)
        existing = self.read(table, columns=key_list, filters=[(column, "in", list(groups))])
        incoming_keys = data.select(key_list).cast(existing.schema)
        doomed = existing.join(incoming_keys, keys=key_list, join_type="left anti")
        if data.num_rows == 0 and doomed.num_rows == 0:
            return WriteMetrics.rows()
        marker = "_sync_groups_delete"
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
        return WriteMetrics(metrics).only(INSERTED, UPDATED, DELETED)


def _transactions(markers: Markers | None, more: Sequence[str] = ()) -> CommitProperties | None:
    """Commit properties recording markers as app transactions (None: nothing to record)."""
    if isinstance(markers, Mapping):
        pairs = [*markers.items(), *((m, 1) for m in more)]
    else:
        pairs = [(m, 1) for m in [*(markers or ()), *more]]
    if not pairs:
        return None
    return CommitProperties(
        app_transactions=[Transaction(app_id=app_id, version=v) for app_id, v in pairs]
    )


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


def logged_row_count(dt: DeltaTable) -> int:
    """Rows in a table's current snapshot, from the file statistics in its log (no scan)."""
    actions = dt.get_add_actions(flatten=True)
    if "num_records" not in actions.column_names:
        return 0
    return sum(v for v in actions.column("num_records").to_pylist() if v is not None)
