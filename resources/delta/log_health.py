"""A broken Delta log named: which table, which file, what is wrong with it.

delta-rs reports a corrupt commit or checkpoint as a bare parser error (``Json error…``,
``Arrow error: EOF…``) that names neither the table nor the file, and it reads a 0-byte
commit as a commit with no actions, so the rows that commit added vanish without a word.
This module looks at the log itself: when an open fails, ``broken_log_error`` finds the
first file of the log that does not parse; when an open succeeds, ``check_commits``
makes sure no commit up to the opened version is empty (a commit already checked is
not checked again in the same process). delta-rs has no log validation
API, hence the hand-rolled check; it reads file sizes only (a directory listing the
first time a process opens a table, then one stat per new version) and parses files only
after an open has already failed.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

LOG_DIR = "_delta_log"
RECOVERY = "see docs/OPERATIONS.md, 'A broken Delta log'"
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(?:\.\d+\.\d+)?\.parquet$")


class BrokenTableError(DeltaError):
    """A table whose Delta log cannot be read as it stands: one line naming table and file."""


def broken(table: Sequence[str], file: str, problem: str, cause: str = "") -> BrokenTableError:
    """The one-line error for a broken log file of ``table``."""
    name = "/".join(table)
    detail = f" (delta-rs: {cause})" if cause else ""
    return BrokenTableError(f"{name}: Delta log file {file} {problem}{detail}; {RECOVERY}")


def first_line(exc: BaseException) -> str:
    """delta-rs errors carry a Rust backtrace after their first line."""
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _log_files(fs: pa_fs.FileSystem) -> list[pa_fs.FileInfo]:
    selector = pa_fs.FileSelector(LOG_DIR, allow_not_found=True)
    return [info for info in fs.get_file_info(selector) if info.type == pa_fs.FileType.File]


def find_broken_file(fs: pa_fs.FileSystem) -> tuple[str, str] | None:
    """The first log file that cannot be what it claims to be, and why; None if all parse.

    Checked in the order delta-rs reads them: ``_last_checkpoint``, the checkpoints,
    then the JSON commits after the newest checkpoint (the ones a snapshot replays).
    """
    files = {info.base_name: info for info in _log_files(fs)}
    hint = files.get("_last_checkpoint")
    if hint is not None:
        try:
            json.loads(_read(fs, hint.path))
        except (ValueError, UnicodeDecodeError):
            return f"{LOG_DIR}/_last_checkpoint", "is not valid JSON"
    checkpoints = sorted(
        (int(m.group(1)), name) for name in files if (m := _CHECKPOINT.match(name))
    )
    for _, name in reversed(checkpoints):
        try:
            with fs.open_input_file(files[name].path) as handle:
                pq.read_metadata(handle)
        except (OSError, ValueError):
            return f"{LOG_DIR}/{name}", "is not a readable checkpoint"
    newest = checkpoints[-1][0] if checkpoints else -1
    commits = sorted((int(m.group(1)), name) for name in files if (m := _COMMIT.match(name)))
    for version, name in commits:
        if version <= newest:
            continue
        info = files[name]
        if info.size == 0:
            return f"{LOG_DIR}/{name}", "is empty (0 bytes)"
        text = _read(fs, info.path)
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError:
                return f"{LOG_DIR}/{name}", f"line {number} is not valid JSON"
    return None


def _read(fs: pa_fs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as stream:
        data: bytes = stream.read()
    return data.decode("utf-8")


def broken_log_error(
    fs: pa_fs.FileSystem, table: Sequence[str], exc: BaseException
) -> BrokenTableError | None:
    """When ``exc`` (from opening or writing ``table``) comes from a broken log file, the
    error naming it; None for every other failure (a missing table, a lost commit race,
    time travel to a version whose log was cleaned up)."""
    if isinstance(exc, BrokenTableError | TableNotFoundError | CommitFailedError):
        return None
    if not isinstance(exc, DeltaError | OSError):
        return None
    try:
        found = find_broken_file(fs)
    except OSError:
        return None
    return None if found is None else broken(table, *found, first_line(exc))


@contextmanager
def naming_broken_log(
    filesystem: Callable[[], pa_fs.FileSystem], table: Sequence[str]
) -> Iterator[None]:
    """Re-raise a failure to open or write ``table`` as ``BrokenTableError`` when a log
    file is to blame; every other failure passes through unchanged."""
    try:
        yield
    except Exception as exc:
        named = broken_log_error(filesystem(), table, exc)
        if named is not None:
            raise named from None
        raise


class CommitCheck:
    """Tables (by location) known to have no empty commit up to a version, per process."""

    def __init__(self) -> None:
        self._clean: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, fs: pa_fs.FileSystem, uri: str, table: Sequence[str], version: int) -> None:
        """Raise ``BrokenTableError`` when a commit at or below ``version`` is 0 bytes.

        A commit is written whole (a rename locally, a conditional PUT on S3), so an
        empty one is damage, never a write in progress.
        """
        with self._lock:
            checked = self._clean.get(uri)
        if checked is not None and checked >= version:
            return
        if checked is None:
            infos = [
                info
                for info in _log_files(fs)
                if (m := _COMMIT.match(info.base_name)) and int(m.group(1)) <= version
            ]
        else:
            paths = [f"{LOG_DIR}/{v:020d}.json" for v in range(checked + 1, version + 1)]
            infos = [info for info in fs.get_file_info(paths) if info.type == pa_fs.FileType.File]
        for info in sorted(infos, key=lambda i: i.base_name):
            if info.size == 0:
                raise broken(table, f"{LOG_DIR}/{info.base_name}", "is empty (0 bytes)")
        with self._lock:
            self._clean[uri] = max(version, self._clean.get(uri, -1))

    def forget(self) -> None:
        """Check every table afresh (a log repaired or replaced while this process ran)."""
        with self._lock:
            self._clean.clear()


COMMITS = CommitCheck()
