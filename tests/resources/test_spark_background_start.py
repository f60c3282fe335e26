"""Starting the Spark session early on a background thread, as ``flowehr run`` does."""

from __future__ import annotations

import threading

import pytest

from resources import spark as spark_module
from resources.spark import SparkResource


def test_session_waits_for_the_background_start_and_reuses_its_session(monkeypatch) -> None:
    monkeypatch.setattr(spark_module, "_background_start", None)
    built: list[threading.Thread] = []
    real_build = spark_module.build_local_spark_session

    def recording_build(*args, **kwargs):
        built.append(threading.current_thread())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(spark_module, "build_local_spark_session", recording_build)
    resource = SparkResource(master="local[1]", conf={"spark.sql.shuffle.partitions": "1"})
    resource.start_in_background()
    resource.start_in_background()  # once per process, however often it is asked
    background = spark_module._background_start
    assert background is not None and background.name == "spark-start"

    session = resource.session

    assert not background.is_alive()
    assert built[0] is background  # the JVM was started off the caller's thread
    assert session.range(3).count() == 3
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"


def test_a_failed_background_start_leaves_the_error_to_the_asset(monkeypatch) -> None:
    monkeypatch.setattr(spark_module, "_background_start", None)

    def broken_build(*args, **kwargs):
        raise RuntimeError("no JVM here")

    monkeypatch.setattr(spark_module, "build_local_spark_session", broken_build)
    resource = SparkResource(master="local[1]")
    resource.start_in_background()
    spark_module.wait_for_background_start()
    with pytest.raises(RuntimeError, match="no JVM here"):
        resource.session  # noqa: B018 - the property is what the asset calls
