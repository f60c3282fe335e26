"""Spark servers from the installed pyspark, on 127.0.0.1, each stopped by its id: a Spark
Connect server with delta-spark loaded, and a standalone master with workers (whose
executors get the delta-spark jars from the driver, through ``spark.jars``)."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

from flowehr_pipelines.spark_service import server_argv
from tests.integration.processes import Server, start, stop

SPARK_HOME = Path(pyspark.__file__).parent
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def spark_env(**extra: str) -> dict[str, str]:
    """The environment of a Spark daemon: loopback only, executors on this interpreter."""
    return {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        **extra,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def connect_server(logs: Path, *, master: str = "local[2]") -> Iterator[str]:
    """Start a Connect server (its executors on this interpreter) and yield its URL."""
    port = free_port()
    env = spark_env(SPARK_DAEMON_MEMORY="1g")
    argv = server_argv(port, master=master, driver_memory="1g")
    server = start("spark-connect", argv, env=env, cwd=logs, logs=logs)
    try:
        _wait_for(server, port, timeout=180)
        yield f"sc://127.0.0.1:{port}"
    finally:
        left = stop(server)
        assert not left, f"Spark Connect processes left running: {left}"


def _wait_for(server: Server, port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"the Spark Connect server exited:\n{server.tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no Spark Connect server on port {port} after {timeout} s")


@dataclass(frozen=True)
class StandaloneCluster:
    """A master's URL and each worker's work directory (its executors' logs)."""

    master: str
    work_dirs: tuple[Path, ...]


@contextmanager
def standalone_cluster(logs: Path, *, workers: int = 2) -> Iterator[StandaloneCluster]:
    """A standalone master and ``workers`` workers (one core, 1 GiB each) on 127.0.0.1."""
    port = free_port()
    env = spark_env(
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false", SPARK_DAEMON_MEMORY="512m"
    )
    started: list[Server] = []

    def daemon(name: str, main_class: str, *args: str) -> Server:
        argv = [str(SPARK_HOME / "bin" / "spark-class"), main_class, "--host", "127.0.0.1"]
        server = start(
            name, [*argv, *args, "--webui-port", str(free_port())], env=env, cwd=logs, logs=logs
        )
        started.append(server)
        return server

    try:
        master = daemon("spark-master", MASTER_CLASS, "--port", str(port))
        _wait_for(master, port, timeout=120)
        url = f"spark://127.0.0.1:{port}"
        work_dirs = []
        for n in range(workers):
            work = logs / f"worker-{n}"
            work.mkdir(parents=True, exist_ok=True)
            work_dirs.append(work)
            daemon(
                f"spark-worker-{n}",
                WORKER_CLASS,
                url,
                *("--cores", "1", "--memory", "1g", "--work-dir", str(work)),
            )
        _wait_for_workers(started[1:], workers, timeout=120)
        yield StandaloneCluster(url, tuple(work_dirs))
    finally:
        left = [pid for server in reversed(started) for pid in stop(server)]
        assert not left, f"Spark cluster processes left running: {left}"


def _wait_for_workers(servers: list[Server], count: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        registered = sum("Successfully registered with master" in s.tail(200) for s in servers)
        if registered == count:
            return
        if not all(s.alive() for s in servers):
            raise RuntimeError("a Spark worker exited:\n" + "\n".join(s.tail() for s in servers))
        time.sleep(0.5)
    raise TimeoutError(f"{count} Spark workers did not register within {timeout} s")
