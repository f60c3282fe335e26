"""Settings models of the resources: the lake (local or S3), the Spark session, Databricks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StrictSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3Settings(StrictSettings):
    """Where an S3-compatible object store is, for the lake and the reports."""

    endpoint_url: str | None = None
    region: str = "eu-west-2"
    allow_http: bool = False
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None


class LakeSettings(StrictSettings):
    """The lake root: a local directory or an ``s3://bucket/prefix``."""

    root: str | None = Field(default=None, description="Defaults to <data_dir>/lake.")
    s3: S3Settings = S3Settings()


class SparkSettings(StrictSettings):
    """The local Spark session shared by every asset in a run process."""

    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)


class DatabricksSettings(StrictSettings):
    """Where feature transforms run when ``compute: databricks``."""

    host: str | None = None
    token_env: str = "DATABRICKS_TOKEN"
    existing_cluster_id: str | None = None
    new_cluster: dict[str, Any] | None = None
    secret_scope: str = "flowehr"
    workspace_dir: str = "/Shared/flowehr"
    pseudonymisation_secret_key: str = Field(
        default="pseudonymisation-key",
        description="Key in secret_scope holding the pseudonymisation key.",
    )
    entrypoint: str | None = Field(
        default=None,
        description="python_file of the feature job; default "
        "<workspace_dir>/transforms/pipes/feature_job.py.",
    )
    libraries: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"pypi": {"package": "dagster-pipes==1.13.27"}}],
        description="Libraries installed on the job cluster (Databricks jobs API format).",
    )
    timeout_seconds: int = Field(default=3600, gt=0)
    poll_interval_seconds: float = Field(default=10.0, gt=0)


class ConfigError(Exception):
    """A config problem a user can fix; the message names the file and the key."""
