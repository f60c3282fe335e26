"""Long-running server processes for tests: started in their own session, stopped by id.

Each process gets its own process group, and every descendant it spawned (a code
server's gRPC child, a run worker) is recorded before it is stopped, so teardown ends
exactly what the test started and can check that nothing is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Server:
    """One started process, its log file and the descendants seen so far."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    seen: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def note_descendants(self) -> None:
        try:
            self.seen |= {p.pid for p in psutil.Process(self.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass


def start(
    name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, logs: Path
) -> Server:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(name, process, log)


def stop(server: Server, *, grace: float = 20.0) -> list[int]:
    """SIGTERM the group, then SIGKILL what remains; returns the pids still alive after."""
    server.note_descendants()
    pids = {server.pid, *server.seen}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(server.pid, sig)
        for pid in pids - {server.pid}:
            _signal_pid(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(p) for p in pids):
            server.process.poll()  # reaps the main process once it has exited
            time.sleep(0.2)
        if not any(_running(p) for p in pids):
            break
    server.process.wait(timeout=5)
    return sorted(p for p in pids if _running(p))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
