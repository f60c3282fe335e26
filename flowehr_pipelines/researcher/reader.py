"""The researcher's reader: lake root and read credentials only, and only the published zones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from resources.delta.storage import LocalStorage
from resources.delta.store import DeltaTableStore
from resources.local_links import escaping_link, shown
from transforms.disclosure import DisclosurePolicy, recorded_rule
from transforms.project_keys import PSEUDONYM_COLUMNS, rekey_table


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
    """The published zones of a lake, read-only: every path is checked before use.

    Checked by name (``published_path``) and by where it leads: a symbolic link in a
    local lake, or a data file the log names by an absolute path, that leads out of the
    table's zone makes the table unreadable here (``PermissionError``, one line).
    """

    def __init__(self, delta: DeltaTableStore, project_key: bytes | None = None) -> None:
        self._delta = delta
        self._project_key = project_key

    def exists(self, path: str | Sequence[str]) -> bool:
        parts = self._contained(path)
        return self._delta.exists(parts)

    def table(self, path: str | Sequence[str], *, version: int | None = None) -> Any:
        parts = self._contained(path)
        dt = self._delta.table(parts, version=version)
        location = self._delta.uri(parts).rstrip("/")
        inside = [location + "/"]
        if isinstance(self._delta.storage, LocalStorage):  # delta-rs names files by real path
            inside.append(f"{Path(location).resolve()}/")
        outside = [uri for uri in dt.file_uris() if not uri.startswith(tuple(inside))]
        if outside:
            raise PermissionError(
                f"'{'/'.join(parts)}' is not readable here: its log names "
                f"{len(outside)} data file(s) outside the table's directory"
            )
        return dt

    def read(self, path: str | Sequence[str], **kwargs: Any) -> pa.Table:
        """A published table; under a project, with the project's pseudonyms.

        Raises:
            ValueError: a filter on a pseudonym column under a project (the stored
                values are not the project's, so it would silently match nothing).
        """
        self.table(path, version=kwargs.get("version"))
        if self._project_key is None:
            return self._delta.read(published_path(path), **kwargs)
        if kwargs.get("filters") and any(c in str(kwargs["filters"]) for c in PSEUDONYM_COLUMNS):
            raise ValueError(
                "filters on person_key are not supported in a project: filter the rows read"
            )
        return rekey_table(self._project_key, self._delta.read(published_path(path), **kwargs))

    def disclosure_policy(self, paths: Sequence[str | Sequence[str]]) -> DisclosurePolicy:
        """The disclosure rule the pipeline recorded on the first of ``paths`` that has
        one (the default rule when none has): counts of people in a summary shown to a
        researcher obey the same rule as the published aggregates."""
        for path in paths:
            if self.exists(path):
                policy, _ = recorded_rule(self.table(path).metadata().configuration)
                if policy is not None:
                    return policy
        return DisclosurePolicy()

    def _contained(self, path: str | Sequence[str]) -> tuple[str, ...]:
        """The path's segments, once its name and its place on disk are both published."""
        parts = published_path(path)
        storage = self._delta.storage
        if not isinstance(storage, LocalStorage):
            return parts  # object stores have no links; file URIs are checked on open
        root = Path(storage.root)
        zone = next(z for z in PUBLISHED_ZONES if parts[: len(z)] == z)
        escape = escaping_link(root.joinpath(*parts), root.resolve().joinpath(*zone))
        if escape is not None:
            link, target = escape
            raise PermissionError(
                f"'{'/'.join(parts)}' is not a published table: "
                f"'{shown(link.absolute(), root)}' leads to {shown(target, root)!r}, "
                f"outside {'/'.join(zone)}; remove the link"
            )
        return parts


PUBLISHED_ZONES: tuple[tuple[str, ...], ...] = (("gold", "features"), ("reporting",))

FEATURE_ZONE: tuple[str, ...] = ("gold", "features")
