"""The researcher's reader: lake root and read credentials only, and only the published zones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from resources.delta.store import DeltaTableStore


@dataclass(frozen=True)
class ColumnInfo:
    """One data dictionary entry."""

    name: str
    type: str
    role: str
    description: str


@dataclass(frozen=True)
class FeatureTableInfo:
    """A feature table as the catalogue lists it."""

    name: str
    description: str
    horizon: str
    columns: tuple[ColumnInfo, ...]
    delta_version: int | None
    rows: int | None
    feature_versions: tuple[str, ...]

    @property
    def path(self) -> str:
        return "/".join((*FEATURE_ZONE, self.name))


def published_path(path: str | Sequence[str]) -> tuple[str, ...]:
    """Split a table path and check it lies in a published zone.

    Raises:
        PermissionError: for any path outside ``gold/features`` and ``reporting``, or
            one that tries to climb out of them.
    """
    parts = tuple(path.strip("/").split("/")) if isinstance(path, str) else tuple(path)
    safe = all(part and part not in (".", "..") and "/" not in part for part in parts)
    for zone in PUBLISHED_ZONES:
        if safe and len(parts) > len(zone) and parts[: len(zone)] == zone:
            return parts
    shown = "/".join(parts)
    raise PermissionError(
        f"'{shown}' is not a published table: researchers may read gold/features and "
        "reporting only (never landing, bronze, silver or internal)"
    )


class PublishedLake:
    """The published zones of a lake, read-only: every path is checked before use."""

    def __init__(self, delta: DeltaTableStore) -> None:
        self._delta = delta

    def exists(self, path: str | Sequence[str]) -> bool:
        return self._delta.exists(published_path(path))

    def table(self, path: str | Sequence[str], *, version: int | None = None) -> Any:
        return self._delta.table(published_path(path), version=version)

    def read(self, path: str | Sequence[str], **kwargs: Any) -> pa.Table:
        return self._delta.read(published_path(path), **kwargs)


PUBLISHED_ZONES: tuple[tuple[str, ...], ...] = (("gold", "features"), ("reporting",))

FEATURE_ZONE: tuple[str, ...] = ("gold", "features")
