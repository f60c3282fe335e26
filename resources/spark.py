"""The Spark session shared by every asset of a run process.

A local session takes seconds to start and its first job seconds more, so it is
created lazily, once per process, and reused by every asset (Spark's
``getOrCreate`` keeps one active session per JVM). ``flowehr run`` can start it
early on a background thread (``start_in_background``), so the JVM starts while the
Python-only steps (CDC ingestion, bronze loads) run; the first asset that needs the
session then waits for that start instead of making its own. The Databricks seam is the
``compute`` setting: with ``databricks`` the feature transforms are submitted
through Pipes instead of running on this session. With ``spark.remote`` the session is
a Spark Connect client: no JVM in the run process, the work on the server's executors.
A local session loads delta-spark (``resources.delta.spark_tables.session_conf``), so
Delta tables are read and written by its executors; a Connect server brings its own.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession

from resources.delta.spark_tables import DELTA_TABLE_DEFAULTS, session_conf

_log = logging.getLogger(__name__)
CONNECT_DEFAULT_PORT = 15002
_background_lock = threading.Lock()
_background_start: threading.Thread | None = None


class SparkResource(dg.ConfigurableResource):
    """A lazily created SparkSession pinned to UTC: in this process (``master``) or on a
    Spark Connect server (``remote``)."""

    master: str = "local[2]"
    app_name: str = "flowehr-pipelines"
    conf: dict[str, str] = Field(default_factory=dict)
    remote: str | None = Field(default=None, description="Spark Connect URL (sc://host:port).")
    remote_token: str | None = Field(
        default=None, description="Spark Connect bearer token; supply it as an EnvVar."
    )
    connect_timeout_seconds: float = 10.0
    _session: SparkSession | None = PrivateAttr(default=None)

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            wait_for_background_start()
            if self.remote:
                self._session = build_connect_session(
                    self.remote,
                    self.conf,
                    token=self.remote_token,
                    timeout=self.connect_timeout_seconds,
                )
            else:
                self._session = build_local_spark_session(self.master, self.app_name, self.conf)
        return self._session

    def start_in_background(self) -> None:
        """Start this process's session (and a first job) on a daemon thread; a remote
        session costs no JVM here, so it is left to the first asset that needs it."""
        if not self.remote:
            start_in_background(self.master, self.app_name, dict(self.conf))


def start_in_background(master: str, app_name: str, conf: dict[str, str]) -> None:
    """Start the session and run a tiny first job off the caller's thread, once per process.

    A failure here is only logged: the asset that needs the session builds it itself
    and reports the error where it belongs.
    """
    global _background_start
    with _background_lock:
        if _background_start is not None:
            return
        _background_start = threading.Thread(
            target=_warm_up, args=(master, app_name, conf), name="spark-start", daemon=True
        )
        _background_start.start()


def wait_for_background_start() -> None:
    """Block until a background start (if any) has finished, whatever its outcome."""
    thread = _background_start
    if thread is not None and thread is not threading.current_thread():
        thread.join()


def _warm_up(master: str, app_name: str, conf: dict[str, str]) -> None:
    try:
        session = build_local_spark_session(master, app_name, conf)
        # The first job pays for executor start, code generation, the Parquet reader
        # and Arrow collection: the paths the silver and feature assets use.
        with tempfile.TemporaryDirectory(prefix="flowehr-spark-warm-up-") as directory:
            path = Path(directory) / "warm_up.parquet"
            pq.write_table(pa.table({"id": [1, 2], "name": ["a", "b"]}), path)
            session.read.parquet(str(path)).groupBy("name").count().toArrow()
    except Exception:  # the asset that needs Spark reports the real error
        _log.warning("starting Spark in the background failed", exc_info=True)


class SparkConnectUnavailableError(RuntimeError):
    """The Spark Connect server cannot be reached or refused the session."""


def build_connect_session(
    remote: str, conf: dict[str, str], *, token: str | None = None, timeout: float = 10.0
) -> SparkSession:
    """A session on a Spark Connect server (Databricks Connect speaks the same protocol).

    The server is probed first with a bounded TCP connect, so an unreachable URL is one
    line at once instead of the client's retries. Only runtime ``spark.sql.*`` settings
    apply to a remote session; the JVM-level ones (memory, GC) belong to the server.

    Raises:
        SparkConnectUnavailableError: naming the URL (never the token) and the reason.
    """
    parts = urlsplit(remote.replace("sc://", "http://", 1))
    host, port = parts.hostname or "", parts.port or CONNECT_DEFAULT_PORT
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise SparkConnectUnavailableError(
            f"Spark Connect at sc://{host}:{port} is unreachable: {exc.strerror or exc}"
        ) from None
    url = f"{remote.rstrip('/')}/;token={token}" if token else remote
    builder = SparkSession.builder.remote(url)
    settings = {"spark.sql.session.timeZone": "UTC", **DELTA_TABLE_DEFAULTS, **conf}
    for key, value in settings.items():
        if key.startswith(("spark.sql.", "spark.databricks.delta.")):
            builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # the client raises its own error types per failure
        reason = str(exc).replace(token, "***") if token else str(exc)
        first = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
        raise SparkConnectUnavailableError(
            f"Spark Connect at sc://{host}:{port} refused the session: {first}"
        ) from None


def build_local_spark_session(master: str, app_name: str, conf: dict[str, str]) -> SparkSession:
    """Start (or join) this process's SparkSession with workers on this interpreter and
    delta-spark loaded.

    Raises:
        DeltaJarsMissingError: when ``make install`` has not fetched the jars.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    for key, value in {**session_conf(), **conf}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
