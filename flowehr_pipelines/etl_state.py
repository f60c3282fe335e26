"""The persisted changelog number of every source table (``internal/etl_state``).

A load reads the number, fetches rows with a greater ``change_seq``, and advances the
number only after the bronze write has committed, so a crash can repeat a batch
(which the bronze MERGE absorbs) but never skip one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from resources.delta_store import DeltaTableStore

ETL_STATE_TABLE = ("internal", "etl_state")

_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("table_name", pa.string()),
        ("changelog_number", pa.int64()),
        ("load_mode", pa.string()),
        ("rows_loaded", pa.int64()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class TableState:
    """Where one source table's loads have got to."""

    source: str
    table_name: str
    changelog_number: int
    load_mode: str
    rows_loaded: int
    updated_at: datetime


class EtlStateStore:
    """Read and write changelog numbers in one small Delta table."""

    def __init__(self, delta: DeltaTableStore) -> None:
        self._delta = delta

    def all(self, source: str | None = None) -> list[TableState]:
        table = self._delta.read_or_none(ETL_STATE_TABLE)
        if table is None:
            return []
        if source is not None:
            table = table.filter(pc.equal(table["source"], source))
        states = [TableState(**row) for row in table.to_pylist()]
        return sorted(states, key=lambda s: (s.source, s.table_name))

    def get(self, source: str, table_name: str) -> TableState | None:
        for state in self.all(source):
            if state.table_name == table_name:
                return state
        return None

    def set(
        self,
        source: str,
        table_name: str,
        *,
        changelog_number: int,
        load_mode: str,
        rows_loaded: int,
    ) -> None:
        row = pa.Table.from_pylist(
            [
                {
                    "source": source,
                    "table_name": table_name,
                    "changelog_number": changelog_number,
                    "load_mode": load_mode,
                    "rows_loaded": rows_loaded,
                    "updated_at": datetime.now(UTC),
                }
            ],
            schema=_SCHEMA,
        )
        self._delta.merge(ETL_STATE_TABLE, row, keys=["source", "table_name"])

    def clear(self, source: str, table_name: str | None = None) -> int:
        """Forget changelog numbers so the next load is a bulk load; returns rows removed."""
        if not self._delta.exists(ETL_STATE_TABLE):
            return 0
        predicate = f"source = '{_sql_literal(source)}'"
        if table_name is not None:
            predicate += f" AND table_name = '{_sql_literal(table_name)}'"
        metrics = self._delta.delete(ETL_STATE_TABLE, predicate)
        return int(metrics.get("num_deleted_rows", 0))


def _sql_literal(value: str) -> str:
    return value.replace("'", "''")
