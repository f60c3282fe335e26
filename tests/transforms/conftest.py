"""Shared fixtures for the pure-transform tests: one UTC-pinned local Spark session."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from resources.spark import build_local_spark_session


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    """The process's one SparkSession, reused by every test.

    Spark allows one session per process and other test packages need it too, so the
    session is deliberately not stopped here: it ends with the interpreter.
    """
    return build_local_spark_session(
        "local[1]", "flowehr-tests", {"spark.sql.shuffle.partitions": "1"}
    )
