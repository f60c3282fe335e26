"""Spark compute targets: settings, one-line errors, and the feature assets run on a real
standalone cluster (two workers) and through a real Spark Connect server, each giving the
same gold tables as the local session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pydantic import ValidationError

from assets.features.tables import build_defs, feature_key
from flowehr_pipelines.config import load_settings
from resources.delta.store import DeltaTableStore
from resources.settings import SparkSettings
from resources.spark import SparkConnectUnavailableError, SparkResource, build_connect_session
from tests.assets.features.feature_story import table_hash
from tests.assets.silver_world import build_world
from tests.conftest import REPO_ROOT
from tests.lakes import local_store
from tests.spark_servers import connect_server, free_port, standalone_cluster
from transforms.features.pipeline import FEATURE_TABLES

TABLES = {
    n: FEATURE_TABLES[n] for n in ("patient_demographics", "vital_signs", "news2", "outcomes")
}


def test_compute_target_settings_are_checked() -> None:
    assert SparkSettings(master="spark://127.0.0.1:7077").master == "spark://127.0.0.1:7077"
    assert SparkSettings(remote="sc://127.0.0.1:15002").remote == "sc://127.0.0.1:15002"
    assert SparkSettings(remote="").remote is None
    with pytest.raises(ValidationError, match=r"goes in spark\.remote"):
        SparkSettings(master="sc://127.0.0.1:15002")
    with pytest.raises(ValidationError, match="never config"):
        SparkSettings(remote="sc://127.0.0.1:15002/;token=secret")
    with pytest.raises(ValidationError, match="local, local"):
        SparkSettings(master="yarn")


def test_an_unreachable_connect_server_is_one_line_within_the_timeout() -> None:
    port = free_port()
    with pytest.raises(SparkConnectUnavailableError) as raised:
        build_connect_session(f"sc://127.0.0.1:{port}", {}, token="s3cret-token", timeout=2)
    message = str(raised.value)
    assert message.startswith(f"Spark Connect at sc://127.0.0.1:{port} is unreachable")
    assert "\n" not in message and "s3cret-token" not in message


def materialise(delta: DeltaTableStore, spark: SparkResource) -> dict[str, str]:
    assets = [
        a
        for a in build_defs(load_settings(), tables=TABLES).assets or []
        if isinstance(a, dg.AssetsDefinition)
    ]
    assert dg.materialize(assets, resources={"delta": delta, "spark": spark}).success
    return {name: table_hash(delta.read(feature_key(name).path)) for name in TABLES}


def main() -> None:
    """A run process on another target: it holds that target's session only (a process
    has one, as a run does). Arguments: lake, ``spark://`` master or ``sc://`` URL."""
    lake, target = sys.argv[1], sys.argv[2]
    conf = {"spark.sql.shuffle.partitions": "2"}
    if target.startswith("sc://"):
        spark = SparkResource(remote=target, conf=conf)
    else:
        conf |= {"spark.executor.memory": "512m", "spark.cores.max": "2"}
        spark = SparkResource(master=target, conf=conf)
    print(json.dumps(materialise(local_store(Path(lake)), spark)))


def run_on(target: str, lake: Path) -> dict[str, str]:
    child = subprocess.run(
        [sys.executable, "-m", "tests.resources.test_spark_targets", str(lake), target],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result: dict[str, str] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The gold tables of the local session, from the same silver world."""
    lake = local_store(tmp_path_factory.mktemp("local"))
    build_world().write(lake)
    return materialise(
        lake, SparkResource(master="local[1]", conf={"spark.sql.shuffle.partitions": "1"})
    )


@pytest.mark.cluster
def test_feature_assets_on_spark_connect_equal_the_local_session(
    tmp_path: Path, expected: dict[str, str]
) -> None:
    build_world().write(local_store(tmp_path / "lake"))
    with connect_server(tmp_path / "logs") as url:
        assert run_on(url, tmp_path / "lake") == expected


@pytest.mark.cluster
def test_feature_assets_on_a_two_worker_cluster_equal_the_local_session(
    tmp_path: Path, expected: dict[str, str]
) -> None:
    build_world().write(local_store(tmp_path / "lake"))
    with standalone_cluster(tmp_path / "logs", workers=2) as cluster:
        assert run_on(cluster.master, tmp_path / "lake") == expected
        # Each worker ran an executor of the run's application (its logs are there).
        executors = [sorted(work.glob("app-*/*/stderr")) for work in cluster.work_dirs]
        assert all(executors), executors


if __name__ == "__main__":
    main()
