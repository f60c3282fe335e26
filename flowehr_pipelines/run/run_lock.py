"""One ``flowehr run`` at a time per Dagster instance: the second waits, or refuses in one line.

Two runs at once on one data directory raced Dagster's first-time creation of its
SQLite run and event databases (leaving two schema heads: every later run failed), and
on an existing instance they conflicted on the same Delta commits, so both failed. An
operating-system file lock (``fcntl.flock``) on ``$DAGSTER_HOME/flowehr-run.lock`` is
taken before the instance is opened: the kernel releases it when its holder exits,
however it exits, so a killed run never leaves a stale lock. The file records the
holder's pid and start time for the message.

It guards one machine's data directory. Runs launched by the Dagster daemon or the UI
do not take it (Dagster's run queue governs them), and a lake on S3 shared by several
hosts relies on Delta's commit checks and the EHR lock (docs/OPERATIONS.md).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = "flowehr-run.lock"


class RunLockHeldError(RuntimeError):
    """Another ``flowehr run`` holds the instance and this one was told not to wait."""


def _holder(path: Path) -> str:
    try:
        pid, _, started = path.read_text().strip().partition(" ")
    except OSError:
        return "another flowehr run"
    return f"flowehr run pid {pid or '?'}" + (f" (started {started})" if started else "")


@contextmanager
def run_lock(
    dagster_home: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the instance's run lock for the block; wait for it (telling ``on_wait``) or refuse.

    Raises:
        RunLockHeldError: when another run holds it and ``wait`` is false.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                raise RunLockHeldError(
                    f"{holder} is using {dagster_home}: wait for it to finish, or run again "
                    "without --no-wait to queue behind it"
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for {holder} to finish with {dagster_home}")
            started = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            if on_wait is not None:
                on_wait(f"lock taken after {time.monotonic() - started:.0f}s")
        os.ftruncate(fd, 0)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"{os.getpid()} {stamp}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
