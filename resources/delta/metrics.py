"""What one Delta write did: the one metrics type every write verb of the store returns.

It reads as the mapping delta-rs reports (``metrics["num_target_rows_inserted"]``), so
callers and the Dagster metadata keep delta-rs's names, and it has short typed
properties for the counts most callers want.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

INSERTED = "num_target_rows_inserted"
UPDATED = "num_target_rows_updated"
DELETED = "num_target_rows_deleted"
SOURCE_ROWS = "num_source_rows"


class WriteMetrics(Mapping[str, int]):
    """Row counts of one write (delta-rs's names), the version written and markers applied."""

    __slots__ = ("_counts", "_version", "applied")

    def __init__(
        self,
        counts: Mapping[str, Any] | None = None,
        *,
        version: int | Callable[[], int] | None = None,
        applied: tuple[str, ...] = (),
    ) -> None:
        self._counts = {
            name: int(value)
            for name, value in (counts or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        self._version = version
        self.applied = applied

    @property
    def version(self) -> int | None:
        """The table version written; read from the log on first use when not known."""
        if callable(self._version):
            self._version = self._version()
        return self._version

    @classmethod
    def rows(
        cls,
        *,
        inserted: int = 0,
        updated: int = 0,
        deleted: int = 0,
        source: int | None = None,
        version: int | Callable[[], int] | None = None,
        applied: tuple[str, ...] = (),
    ) -> WriteMetrics:
        """Counts of a write delta-rs did not measure (a plain append, a no-op)."""
        counts = {INSERTED: inserted, UPDATED: updated, DELETED: deleted}
        if source is not None:
            counts = {SOURCE_ROWS: source, **counts}
        return cls(counts, version=version, applied=applied)

    def only(self, *names: str) -> WriteMetrics:
        """These counts alone (0 where the write did not report one)."""
        return WriteMetrics(
            {name: self._counts.get(name, 0) for name in names},
            version=self._version,
            applied=self.applied,
        )

    @property
    def inserted(self) -> int:
        return self._counts.get(INSERTED, 0)

    @property
    def updated(self) -> int:
        return self._counts.get(UPDATED, 0)

    @property
    def deleted(self) -> int:
        return self._counts.get(DELETED, 0)

    def __getitem__(self, name: str) -> int:
        return self._counts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __repr__(self) -> str:
        return f"WriteMetrics({self._counts}, version={self.version}, applied={self.applied})"
