"""This machine's Spark Connect server: started once, reused, used by a client, stopped by pid."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flowehr_pipelines import spark_service
from resources.processes import process_alive
from tests.spark_servers import free_port, spark_env

CLIENT = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
path = sys.argv[2]
spark.range(5).write.format("delta").mode("overwrite").save(path)
print(spark.read.format("delta").load(path).count())
"""


def test_nothing_recorded_means_not_running_and_nothing_to_stop(tmp_path: Path) -> None:
    assert spark_service.running(tmp_path) is None
    assert spark_service.stop(tmp_path) is None
    folder = spark_service.service_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / spark_service.STATE_FILE).write_text("{not json", encoding="utf-8")
    assert spark_service.read_state(tmp_path) is None


def test_a_port_held_by_another_process_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(spark_service.SparkServiceError, match=f"port {port} .* in use"):
            spark_service.start(tmp_path, port=port)


def test_the_server_binds_loopback_only_and_loads_delta() -> None:
    argv = spark_service.server_argv(15002)
    settings = dict(a.split("=", 1) for a in argv if "=" in a and a.startswith("spark."))
    assert settings["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert settings["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert "delta-spark" in argv[argv.index("--jars") + 1]


@pytest.mark.cluster
def test_started_once_reused_by_clients_and_stopped_by_its_pid(tmp_path: Path) -> None:
    port = free_port()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    state, new = spark_service.start(tmp_path, port=port, memory="1g")
    try:
        assert new and spark_service.running(tmp_path) == state
        again, new_again = spark_service.start(tmp_path, port=port)
        assert (again, new_again) == (state, False)
        recorded = json.loads((spark_service.service_dir(tmp_path) / "server.json").read_text())
        assert recorded["pid"] == state.pid and recorded["port"] == port
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, state.url, str(tmp_path / "table")],
            env=spark_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert client.returncode == 0, client.stderr[-2000:]
        assert client.stdout.strip().splitlines()[-1] == "5"
    finally:
        stopped = spark_service.stop(tmp_path)
    assert stopped == state.pid
    assert not process_alive(state.pid)
    assert spark_service.running(tmp_path) is None and spark_service.read_state(tmp_path) is None
