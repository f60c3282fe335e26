"""Lakes for tests: a Delta table store and an object store on a local directory."""

from __future__ import annotations

from pathlib import Path

from resources.delta.storage import LocalStorage
from resources.delta.store import DeltaTableStore
from resources.object_store import LocalObjectStore


def local_store(root: Path | str) -> DeltaTableStore:
    """The Delta table store of a lake rooted at a local directory."""
    return DeltaTableStore(storage=LocalStorage(root=str(root)))


def local_objects(root: Path | str) -> LocalObjectStore:
    """The object store (landing files, reports) of a lake rooted at a local directory."""
    return LocalObjectStore(root=str(root))
