"""Databricks compute: the job specification submitted, built from config, offline.

Nothing here contacts Databricks: the resource builds its ``jobs.SubmitTask`` from
settings, and Dagster's own Pipes client is asked how it would enrich that task.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest
import yaml
from dagster_databricks import PipesDatabricksClient

from flowehr_pipelines.config import Settings, load_settings
from flowehr_pipelines.deployment import build_feature_job_resource
from resources.databricks import DatabricksPipesResource
from resources.settings import ConfigError
from tests.conftest import REPO_ROOT

NEW_CLUSTER = {
    "spark_version": "15.4.x-scala2.12",
    "node_type_id": "Standard_DS3_v2",
    "num_workers": 2,
    "spark_env_vars": {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"},
}
TOKEN = "dapi-this-must-never-be-shown"


def databricks_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, databricks: dict[str, Any]
) -> Settings:
    """The repository's config plus a local layer switching compute to Databricks."""
    config_dir = tmp_path / "config"
    config_dir.mkdir(parents=True)
    for name in ("config.yaml", "config.ci.yaml"):
        shutil.copy(REPO_ROOT / name, config_dir / name)
    layer = {"compute": "databricks", "databricks": databricks}
    (config_dir / "config.local.yaml").write_text(yaml.safe_dump(layer))
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    return load_settings()


def test_databricks_job_spec_on_an_existing_cluster(tmp_path, monkeypatch) -> None:
    settings = databricks_settings(
        tmp_path,
        monkeypatch,
        {"host": "https://adb-1.azuredatabricks.net", "existing_cluster_id": "0101-abc"},
    )
    resource = build_feature_job_resource(settings)
    task = resource.submit_task(task_key="features_news2").as_dict()
    assert task == {
        "task_key": "features_news2",
        "existing_cluster_id": "0101-abc",
        "spark_python_task": {
            "python_file": "/Shared/flowehr/transforms/pipes/feature_job.py",
            "source": "WORKSPACE",
        },
        "libraries": [{"pypi": {"package": "dagster-pipes==1.13.27"}}],
        "timeout_seconds": 3600,
    }


def test_databricks_job_spec_on_a_new_cluster_references_the_secret_scope(
    tmp_path, monkeypatch
) -> None:
    settings = databricks_settings(
        tmp_path,
        monkeypatch,
        {
            "host": "https://adb-1.azuredatabricks.net",
            "new_cluster": NEW_CLUSTER,
            "secret_scope": "flowehr-prod",
            "entrypoint": "dbfs:/flowehr/feature_job.py",
            "libraries": [{"whl": "dbfs:/flowehr/dagster_pipes-1.13.27-py3-none-any.whl"}],
        },
    )
    task = build_feature_job_resource(settings).submit_task(task_key="features_vitals").as_dict()
    cluster = task["new_cluster"]
    assert cluster["spark_version"] == "15.4.x-scala2.12" and cluster["num_workers"] == 2
    assert cluster["spark_env_vars"] == {
        "PYSPARK_PYTHON": "/databricks/python3/bin/python3",
        "FLOWEHR_PSEUDONYMISATION_KEY": "{{secrets/flowehr-prod/pseudonymisation-key}}",
    }
    assert task["spark_python_task"] == {"python_file": "dbfs:/flowehr/feature_job.py"}
    assert task["libraries"] == [{"whl": "dbfs:/flowehr/dagster_pipes-1.13.27-py3-none-any.whl"}]
    assert "existing_cluster_id" not in task
    assert NEW_CLUSTER["spark_env_vars"] == {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"}


class _FakeSession:
    """What PipesDatabricksClient reads from a Pipes session when it enriches a task."""

    default_remote_invocation_info: ClassVar[dict[str, str]] = {"dagster/run_id": "run-1"}

    def get_per_writer_bootstrap_env_vars(self) -> list[dict[str, str]]:
        return [{"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msg"}]

    def get_per_writer_bootstrap_cli_arguments(self) -> list[dict[str, str]]:
        return [{"--dagster-pipes-context": "ctx", "--dagster-pipes-messages": "msg"}]


def _enriched(resource: DatabricksPipesResource) -> dict[str, Any]:
    client = PipesDatabricksClient.__new__(PipesDatabricksClient)
    client.env = None
    task = resource.submit_task(task_key="features_news2").as_dict()
    context = dg.build_asset_context()
    return client._enrich_submit_task_dict(context, _FakeSession(), task)  # type: ignore[arg-type]


def test_databricks_pipes_bootstrap_reaches_the_job_either_way(tmp_path, monkeypatch) -> None:
    base = {"host": "https://adb-1.azuredatabricks.net"}
    existing = build_feature_job_resource(
        databricks_settings(tmp_path / "a", monkeypatch, {**base, "existing_cluster_id": "c1"})
    )
    task = _enriched(existing)
    # An existing cluster gets the bootstrap as arguments: the job's CLI params loader reads them.
    assert task["spark_python_task"]["parameters"] == [
        "--dagster-pipes-context",
        "ctx",
        "--dagster-pipes-messages",
        "msg",
    ]
    fresh = build_feature_job_resource(
        databricks_settings(tmp_path / "b", monkeypatch, {**base, "new_cluster": NEW_CLUSTER})
    )
    env = _enriched(fresh)["new_cluster"]["spark_env_vars"]
    assert env["DAGSTER_PIPES_CONTEXT"] == "ctx"
    assert env["FLOWEHR_PSEUDONYMISATION_KEY"] == "{{secrets/flowehr/pseudonymisation-key}}"


def test_databricks_settings_need_a_host_and_a_cluster(tmp_path, monkeypatch) -> None:
    no_host = databricks_settings(tmp_path / "a", monkeypatch, {"existing_cluster_id": "c1"})
    with pytest.raises(ConfigError, match="host"):
        build_feature_job_resource(no_host)
    no_cluster = databricks_settings(
        tmp_path / "b", monkeypatch, {"host": "https://adb-1.azuredatabricks.net"}
    )
    with pytest.raises(ConfigError, match="cluster"):
        build_feature_job_resource(no_cluster)


def test_databricks_definitions_submit_features_and_hide_the_token(tmp_path, monkeypatch) -> None:
    from flowehr_pipelines.definitions import defs

    databricks_settings(
        tmp_path,
        monkeypatch,
        {"host": "https://adb-1.azuredatabricks.net", "existing_cluster_id": "c1"},
    )
    definitions = defs()
    resources = definitions.resources or {}
    assert isinstance(resources["feature_jobs"], DatabricksPipesResource)
    assert TOKEN not in repr(resources["feature_jobs"])
    specs = {
        s.key.to_user_string(): s
        for s in definitions.resolve_all_asset_specs()
        if s.key.path[:2] == ["gold", "features"] and s.key.path[2] != "cohorts"
    }
    assert len(specs) == 6  # cohorts run in process (DuckDB), not on Databricks
    for spec in specs.values():
        assert "databricks" in spec.kinds
    news2 = definitions.resolve_assets_def(dg.AssetKey(["gold", "features", "news2"]))
    assert "feature_jobs" in news2.required_resource_keys
    assert "spark" not in news2.required_resource_keys
