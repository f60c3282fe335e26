"""The Spark session shared by every asset of a run process.

A local session takes seconds to start and its first job seconds more, so it is
created lazily, once per process, and reused by every asset (Spark's
``getOrCreate`` keeps one active session per JVM). The Databricks seam is the
``compute`` setting: with ``databricks`` the feature transforms are submitted
through Pipes instead of running on this session.
"""

from __future__ import annotations

import os
import sys

import dagster as dg
from pydantic import Field, PrivateAttr
from pyspark.sql import SparkSession


class SparkResource(dg.ConfigurableResource):
    """A lazily created local SparkSession, pinned to UTC."""

    master: str = "local[2]"
    app_name: str = "flowehr-pipelines"
    conf: dict[str, str] = Field(default_factory=dict)
    _session: SparkSession | None = PrivateAttr(default=None)

    @property
    def session(self) -> SparkSession:
        if self._session is None:
            self._session = build_local_spark_session(self.master, self.app_name, self.conf)
        return self._session


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
