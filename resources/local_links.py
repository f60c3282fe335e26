"""Symbolic links in a local lake: the one way a path in a published zone can lead outside it.

Object keys and Delta paths are checked segment by segment, but a link placed on disk
(``gold/features/x -> ../../bronze/ehr/patients``) is followed by every reader below the
path check. Readers of the published zones resolve what they read with these helpers,
and the privacy scan flags every link that leads out of its zone. S3 has no links.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def links_under(path: Path) -> Iterator[Path]:
    """Every symbolic link at or below ``path``, not following any of them."""
    if path.is_symlink():
        yield path
        return
    if not path.is_dir():
        return
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    yield Path(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))


def escaping_link(path: Path, allowed: Path) -> tuple[Path, Path] | None:
    """The first link at or below ``path`` (or above it, up to ``allowed``) whose target
    lies outside ``allowed`` (a resolved directory), with that target; None when every
    file reached from ``path`` is inside."""
    if not path.resolve().is_relative_to(allowed):
        return path, path.resolve()
    for link in links_under(path):
        target = link.resolve()
        if not target.is_relative_to(allowed):
            return link, target
    return None


def shown(path: Path, root: Path) -> str:
    """A path as the user knows it: relative to the lake root when inside it."""
    for base in (root.absolute(), root.resolve()):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return "a path outside the lake"
