"""The Spark session shared by every asset of a run process.

A local session takes seconds to start and its first job seconds more, so it is
created lazily, once per process, and reused by every asset (Spark's
``getOrCreate`` keeps one active session per JVM). ``flowehr run`` can start it
early on a background thread (``start_in_background``), so the JVM starts while the
Python-only steps (CDC ingestion, bronze loads) run; the first asset that needs the
session then waits for that start instead of making its own. The Databricks seam is the
``compute`` setting: with ``databricks`` the feature transforms are submitted
through Pipes instead of running on this session.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession

_log = logging.getLogger(__name__)
_background_lock = threading.Lock()
_background_start: threading.Thread | None = None


class SparkResource(dg.ConfigurableResource):
    """A lazily created local SparkSession, pinned to UTC."""

    master: str = "local[2]"
    app_name: str = "flowehr-pipelines"
    conf: dict[str, str] = Field(default_factory=dict)
    _session: SparkSession | None = PrivateAttr(default=None)

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            wait_for_background_start()
            self._session = build_local_spark_session(self.master, self.app_name, self.conf)
        return self._session

    def start_in_background(self) -> None:
        """Start this process's session (and a first job) on a daemon thread."""
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


def build_local_spark_session(master: str, app_name: str, conf: dict[str, str]) -> SparkSession:
    """Start (or join) this process's SparkSession with workers on this interpreter."""
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
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
