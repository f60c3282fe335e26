"""Run feature-table jobs outside this process through Dagster Pipes.

With ``compute: databricks`` the feature assets do not compute on the local
SparkSession: they hand one job per feature table to a :class:`FeatureJobResource`.
The job (``transforms/pipes/feature_job.py``) runs the same pure transforms, reads its
inputs from the locations given in the Pipes extras, stages its results as Parquet and
reports counts back as a Pipes custom message; the asset then commits the staged rows
to Delta with delta-rs, so each Delta table keeps one writer engine.

Two implementations share the interface:

* :class:`DatabricksPipesResource` submits a one-off Databricks job run (an existing
  cluster, or a new cluster from config) with ``PipesDatabricksClient``. Inputs are
  read natively as Delta on the cluster. The workspace client is built only when a job
  is launched, so nothing connects when definitions load.
* :class:`LocalPipesResource` runs the job as a subprocess on local Spark with
  ``PipesSubprocessClient``, exchanging Parquet files: the Databricks code path,
  proved end to end on one machine.
"""

from __future__ import annotations

import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from resources.delta.store import DeltaTableStore, TablePath
from resources.pseudonymiser import PSEUDONYMISATION_KEY_ENV
from resources.settings import ConfigError

ENTRYPOINT_MODULE = "transforms.pipes.feature_job"
ENTRYPOINT_RELATIVE_PATH = "transforms/pipes/feature_job.py"
REPO_ROOT = Path(__file__).resolve().parents[1]


class FeatureJobResource(dg.ConfigurableResource, ABC):
    """Runs one feature-table job out of process and reports back through Pipes."""

    @abstractmethod
    def input_location(self, delta: DeltaTableStore, table: TablePath) -> dict[str, Any]:
        """How the job should read a Delta table (the ``inputs`` entries of the extras)."""

    @abstractmethod
    def run_feature_job(
        self,
        context: dg.AssetExecutionContext,
        *,
        task_key: str,
        extras: Mapping[str, Any],
    ) -> dg.PipesClientCompletedInvocation:
        """Launch the job, wait for it and return what it reported."""


class DatabricksPipesResource(FeatureJobResource):
    """Feature jobs as one-off Databricks job runs (``jobs/runs/submit``) through Pipes."""

    host: str = Field(description="Workspace URL, https://<workspace>.cloud.databricks.com.")
    token: str = Field(description="Personal access or service-principal token (an EnvVar).")
    existing_cluster_id: str | None = Field(
        default=None, description="Run on this all-purpose cluster; None = a new job cluster."
    )
    new_cluster: dict[str, Any] | None = Field(
        default=None, description="Job cluster spec (jobs API ``new_cluster``)."
    )
    python_file: str = Field(description="Workspace or DBFS path of the feature job script.")
    libraries: list[dict[str, Any]] = Field(default_factory=list)
    secret_scope: str = "flowehr"
    pseudonymisation_secret_key: str = "pseudonymisation-key"
    timeout_seconds: int = 3600
    poll_interval_seconds: float = 10.0

    def input_location(self, delta: DeltaTableStore, table: TablePath) -> dict[str, Any]:
        return {"format": "delta", "path": delta.uri(table)}

    def submit_task(self, *, task_key: str) -> Any:
        """The ``jobs.SubmitTask`` for one feature job, before Pipes adds its bootstrap.

        A new cluster gets the pseudonymisation key as a secret reference
        (``{{secrets/<scope>/<key>}}``), resolved by Databricks when the cluster starts:
        the key itself never passes through Dagster. (Feature jobs read pseudonymised
        silver and do not use it; jobs that pseudonymise do.) An existing cluster's
        environment cannot be set per run: configure the same reference on it.

        Raises:
            ConfigError: when neither a cluster id nor a new-cluster spec is configured.
        """
        from databricks.sdk.service import jobs

        spec: dict[str, Any] = {
            "task_key": task_key,
            "spark_python_task": {"python_file": self.python_file, "parameters": []},
            "libraries": [dict(library) for library in self.libraries],
            "timeout_seconds": self.timeout_seconds,
        }
        if self.python_file.startswith("/") and not self.python_file.startswith("/dbfs"):
            spec["spark_python_task"]["source"] = "WORKSPACE"
        if self.existing_cluster_id:
            spec["existing_cluster_id"] = self.existing_cluster_id
        elif self.new_cluster:
            cluster = json.loads(json.dumps(self.new_cluster))
            cluster["spark_env_vars"] = {
                **cluster.get("spark_env_vars", {}),
                PSEUDONYMISATION_KEY_ENV: (
                    f"{{{{secrets/{self.secret_scope}/{self.pseudonymisation_secret_key}}}}}"
                ),
            }
            spec["new_cluster"] = cluster
        else:
            raise ConfigError(
                "databricks: set existing_cluster_id or new_cluster to run feature jobs"
            )
        return jobs.SubmitTask.from_dict(spec)

    def pipes_client(self) -> dg.PipesClient:
        """A ``PipesDatabricksClient`` on a fresh workspace client (built on demand)."""
        from dagster_databricks import PipesDatabricksClient
        from databricks.sdk import WorkspaceClient

        workspace = WorkspaceClient(host=self.host, token=self.token)
        return PipesDatabricksClient(
            client=workspace, poll_interval_seconds=self.poll_interval_seconds
        )

    def run_feature_job(
        self,
        context: dg.AssetExecutionContext,
        *,
        task_key: str,
        extras: Mapping[str, Any],
    ) -> dg.PipesClientCompletedInvocation:
        client = self.pipes_client()
        invocation: dg.PipesClientCompletedInvocation = client.run(  # type: ignore[call-arg]
            context=context,
            task=self.submit_task(task_key=task_key),
            extras=dict(extras),
            submit_args={"run_name": f"flowehr {task_key}"},
        )
        return invocation


class LocalPipesResource(FeatureJobResource):
    """Feature jobs as a local subprocess on local Spark, exchanging Parquet files."""

    spark_master: str = "local[1]"
    spark_conf: dict[str, str] = Field(default_factory=dict)

    def input_location(self, delta: DeltaTableStore, table: TablePath) -> dict[str, Any]:
        import pyarrow as pa
        from pyspark.sql.pandas.types import from_arrow_schema

        dt = delta.table(table)
        schema = from_arrow_schema(pa.schema(dt.schema().to_arrow()))
        return {"format": "parquet", "paths": dt.file_uris(), "schema": schema.json()}

    def run_feature_job(
        self,
        context: dg.AssetExecutionContext,
        *,
        task_key: str,
        extras: Mapping[str, Any],
    ) -> dg.PipesClientCompletedInvocation:
        env = {
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        local_extras = {
            **extras,
            "spark_master": self.spark_master,
            "spark_conf": dict(self.spark_conf),
        }
        return dg.PipesSubprocessClient(env=env, cwd=str(REPO_ROOT)).run(
            command=[sys.executable, "-m", ENTRYPOINT_MODULE],
            context=context,
            extras=local_extras,
        )
