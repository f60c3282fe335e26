"""One Spark Connect server per machine, started from the installed pyspark.

A local run starts its own JVM (~20 s on a loaded 2-core machine, before its first
job); a warm Connect server gives a new client a session in about a second. So an
operator (or ``make dev``) starts the server once with ``flowehr spark-server start``
and points runs at it with ``FLOWEHR_SPARK_REMOTE=sc://127.0.0.1:15002``; every run,
and every process of Dagster's multiprocess executor, then shares it.

The server binds to 127.0.0.1 only, loads delta-spark (``resources.delta.spark_tables``)
and runs in its own session (process group), so ``stop`` ends it and every child by the
pid it recorded. Its state (pid, port, log) is one JSON file under the data directory:
a second ``start`` finds a live server and reuses it; a stale file (the server died)
is replaced. Hand-rolled, not ``sbin/start-connect-server.sh``: the pip package ships
no ``sbin`` scripts, and those scripts bind to every interface by default.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess  # nosec B404: fixed argv from the installed pyspark, no shell
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from resources.processes import process_alive

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002
STATE_FILE = "server.json"


class SparkServiceError(RuntimeError):
    """The server could not be started or stopped; the message is one line."""


@dataclass(frozen=True)
class ServerState:
    """What ``start`` recorded: enough to find, probe and stop the server."""

    pid: int
    port: int
    log: str
    started_at: float

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"


def service_dir(data_dir: Path) -> Path:
    return data_dir / "spark-connect"


def read_state(data_dir: Path) -> ServerState | None:
    """The recorded server, or None when none was started (or the file is unreadable)."""
    path = service_dir(data_dir) / STATE_FILE
    try:
        return ServerState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def running(data_dir: Path) -> ServerState | None:
    """The recorded server when its process is alive and its port accepts connections."""
    state = read_state(data_dir)
    if state is None or not process_alive(state.pid):
        return None
    return state if _accepts(state.port) else None


def server_argv(port: int, *, master: str = "local[2]", driver_memory: str = "2g") -> list[str]:
    """``spark-submit`` of the Connect server: loopback only, delta-spark, UTC, no UI."""
    import pyspark

    from resources.delta.spark_tables import session_conf

    spark_home = Path(pyspark.__file__).parent
    delta = session_conf()
    jars = delta.pop("spark.jars")
    settings = {
        **delta,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.master.rest.enabled": "false",
    }
    return [
        str(spark_home / "bin" / "spark-submit"),
        *("--class", CONNECT_SERVER_CLASS, "--master", master),
        *("--driver-memory", driver_memory, "--jars", jars),
        *(arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")),
        "spark-internal",
    ]


def start(
    data_dir: Path,
    *,
    port: int = DEFAULT_PORT,
    master: str = "local[2]",
    memory: str = "2g",
    timeout: float = 180.0,
) -> tuple[ServerState, bool]:
    """Start the server unless one is running; returns its state and whether it is new.

    Raises:
        SparkServiceError: the port is taken by something else, the server exited, or it
            did not accept connections within ``timeout`` seconds (it is then stopped).
    """
    live = running(data_dir)
    if live is not None:
        return live, False
    if _accepts(port):
        raise SparkServiceError(f"port {port} on 127.0.0.1 is in use by another process")
    folder = service_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",  # else the daemon binds its ports everywhere
        "SPARK_DAEMON_MEMORY": memory,  # the Connect server's heap (not --driver-memory)
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    with open(log, "ab") as out:
        process = subprocess.Popen(  # nosec B603: fixed argv, no shell
            server_argv(port, master=master, driver_memory=memory),
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    state = ServerState(pid=process.pid, port=port, log=str(log), started_at=time.time())
    (folder / STATE_FILE).write_text(json.dumps(asdict(state)), encoding="utf-8")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _forget(data_dir)
            raise SparkServiceError(
                f"the Spark Connect server exited with code {process.returncode}; see {log}"
            )
        if _accepts(port):
            return state, True
        time.sleep(0.5)
    stop(data_dir)
    raise SparkServiceError(f"the Spark Connect server did not listen within {timeout:.0f} s")


def stop(data_dir: Path, *, grace: float = 20.0) -> int | None:
    """Stop the recorded server and its children; returns its pid, or None if none ran."""
    state = read_state(data_dir)
    if state is None:
        return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(state.pid, sig)  # its own session: the group is the server's
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and process_alive(state.pid):
            _reap(state.pid)
            time.sleep(0.2)
        if not process_alive(state.pid):
            break
    _forget(data_dir)
    return state.pid


def _reap(pid: int) -> None:
    """Collect the exit status when this process started the server (no zombie left)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _forget(data_dir: Path) -> None:
    (service_dir(data_dir) / STATE_FILE).unlink(missing_ok=True)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
