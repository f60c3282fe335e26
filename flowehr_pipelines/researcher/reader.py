"""The researcher's reader: lake root and read credentials only, and only the published zones."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from resources.delta.storage import LocalStorage, S3Storage
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


@dataclass(frozen=True)
class ReaderSettings:
    """All a researcher's reader needs: where the lake is and how to reach its storage.

    From the environment: ``FLOWEHR_LAKE_ROOT`` (a directory or ``s3://bucket/prefix``;
    default ``$FLOWEHR_DATA_DIR/lake``), ``AWS_REGION``, ``FLOWEHR_S3_ENDPOINT`` and
    ``FLOWEHR_S3_ALLOW_HTTP``. S3 credentials come from the standard AWS chain
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile or an instance role).
    """

    lake_root: str
    region: str = "eu-west-2"
    endpoint_url: str | None = None
    allow_http: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReaderSettings:
        env = os.environ if env is None else env
        root = env.get("FLOWEHR_LAKE_ROOT") or str(
            Path(env.get("FLOWEHR_DATA_DIR") or "./data") / "lake"
        )
        root = root.rstrip("/") if root.startswith("s3://") else str(Path(root).resolve())
        return cls(
            lake_root=root,
            region=env.get("AWS_REGION") or "eu-west-2",
            endpoint_url=env.get("FLOWEHR_S3_ENDPOINT") or None,
            allow_http=(env.get("FLOWEHR_S3_ALLOW_HTTP") or "").lower() in ("1", "true", "yes"),
        )

    def delta_store(self) -> DeltaTableStore:
        if not self.lake_root.startswith("s3://"):
            return DeltaTableStore(storage=LocalStorage(root=self.lake_root))
        return DeltaTableStore(
            storage=S3Storage(
                root=self.lake_root,
                region=self.region,
                endpoint_url=self.endpoint_url,
                allow_http=self.allow_http,
            )
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
