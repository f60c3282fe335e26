"""One ``flowehr run`` per data directory: the second waits or refuses in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowehr_pipelines.run.run_lock import LOCK_FILE, RunLockHeldError, run_lock

HOLD = """
import sys, time
from pathlib import Path
from flowehr_pipelines.run.run_lock import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(home: Path, seconds: float) -> subprocess.Popen[str]:
    """A separate process holding the lock (flock is per open file, so it must be another)."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_run_refuses_in_one_line_naming_the_holder(tmp_path: Path) -> None:
    child = _holder(tmp_path, 30)
    try:
        with pytest.raises(RunLockHeldError) as raised, run_lock(tmp_path, wait=False):
            pass
        message = str(raised.value)
        assert "\n" not in message
        assert f"pid {child.pid}" in message and str(tmp_path) in message
        assert "--no-wait" in message
    finally:
        child.kill()  # by its own pid
        child.wait()


def test_a_second_run_waits_until_the_first_ends_then_takes_the_lock(tmp_path: Path) -> None:
    child = _holder(tmp_path, 1.5)
    notes: list[str] = []
    started = time.monotonic()
    try:
        with run_lock(tmp_path, on_wait=notes.append):
            waited = time.monotonic() - started
            assert child.wait(timeout=10) == 0  # the holder had let go and was ending
    finally:
        child.kill()
        child.wait()
    assert waited >= 1.0
    assert notes[0].startswith(f"waiting for flowehr run pid {child.pid}")
    assert notes[1].startswith("lock taken after")


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    child = _holder(tmp_path, 60)
    child.kill()
    child.wait()
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the kernel dropped the lock
    with run_lock(tmp_path, wait=False):
        assert (tmp_path / LOCK_FILE).read_text().split()[0].isdigit()
