"""The files of a Bulk Data manifest, and downloading them whole into a spool directory.

A file is written under a temporary name and renamed once complete, and a response
shorter than its ``Content-Length`` counts as failed and is fetched again, so a file in
the spool is always a whole file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests

from resources.http_retry import display_url

FileKind = Literal["output", "deleted", "error"]
_CHUNK = 1 << 20
_DOWNLOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class ExportFile:
    """One file the manifest lists, and where it is (to be) downloaded."""

    kind: FileKind
    resource_type: str | None
    url: str
    path: Path

    @property
    def name(self) -> str:
        """The URL without its query (which may be a pre-signed credential)."""
        return display_url(self.url)


def manifest_files(manifest: dict[str, Any], spool: Path) -> list[ExportFile]:
    """Every file of a manifest's ``output``, ``deleted`` and ``error`` arrays.

    Raises:
        ValueError: when an entry has no URL or an array is not a list.
    """
    files: list[ExportFile] = []
    for kind in ("output", "deleted", "error"):
        entries = manifest.get(kind) or []
        if not isinstance(entries, list):
            raise ValueError(f"'{kind}' is not a list")
        for entry in entries:
            url = entry.get("url") if isinstance(entry, dict) else None
            if not isinstance(url, str) or not url:
                raise ValueError(f"an '{kind}' entry has no url")
            kind_type = entry.get("type")
            name = f"{len(files):05d}-{kind}.ndjson"
            files.append(
                ExportFile(
                    kind=kind,  # type: ignore[arg-type]
                    resource_type=kind_type if isinstance(kind_type, str) else None,
                    url=url,
                    path=spool / name,
                )
            )
    return files


def _save(response: requests.Response, path: Path) -> str | None:
    """Stream a response into ``path``; returns why it is unusable (None when whole)."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    expected = response.headers.get("Content-Length")
    partial = path.with_name(path.name + ".part")
    written = 0
    try:
        with partial.open("wb") as out:
            for chunk in response.iter_content(_CHUNK):
                out.write(chunk)
                written += len(chunk)
    except requests.RequestException as exc:
        return f"the connection broke ({type(exc).__name__})"
    finally:
        response.close()
    if expected is not None and expected.isdigit() and int(expected) != written:
        return f"{written} of {expected} bytes"
    partial.replace(path)
    return None


def download_files(
    files: list[ExportFile],
    *,
    fetch: Callable[[str], requests.Response],
    on_file: Callable[[], object] | None = None,
) -> None:
    """Download every file whole, each tried up to three times.

    Args:
        files: the manifest's files.
        fetch: sends the GET for a URL (with retries on transient statuses and the token
            when the manifest requires one) and returns the streamed response.
        on_file: called as each file is complete, for the step's progress lines.

    Raises:
        ValueError: naming the file and the last failure once a file cannot be fetched.
    """
    for file in files:
        failure: str | None = "not tried"
        for _ in range(_DOWNLOAD_ATTEMPTS):
            failure = _save(fetch(file.url), file.path)
            if failure is None:
                break
        if failure is not None:
            raise ValueError(f"download of {file.name} failed: {failure}; nothing was committed")
        if on_file is not None:
            on_file()
