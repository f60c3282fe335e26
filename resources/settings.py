"""Settings models of the resources: the lake (local or S3), the Spark session, Databricks."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PSEUDONYMISATION_KEY_ENV = "FLOWEHR_PSEUDONYMISATION_KEY"
"""The environment variable holding the pseudonymisation key (here so config needs no Dagster)."""

_MASTER = re.compile(r"^(local(\[(\d+|\*)\])?|spark://[^\s/]+:\d+(,[^\s/]+:\d+)*)$")


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
    """Where a run's Spark work goes: a session in the run process (``local[N]`` or a
    standalone cluster's ``spark://host:port``), or a Spark Connect server (``remote``)."""

    master: str = "local[2]"
    remote: str | None = Field(
        default=None,
        description="Spark Connect URL (sc://host:port); when set, master is not used.",
    )
    remote_token_env: str | None = Field(
        default=None,
        description="Environment variable holding the Spark Connect bearer token.",
    )
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long to wait for a Spark Connect server."
    )
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("master")
    @classmethod
    def _master(cls, value: str) -> str:
        if value.startswith("sc://"):
            raise ValueError("a Spark Connect URL goes in spark.remote, not spark.master")
        if not _MASTER.match(value):
            raise ValueError("must be local, local[N], local[*] or spark://host:port")
        return value

    @field_validator("remote")
    @classmethod
    def _remote(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith("sc://") or ";token=" in value:
            raise ValueError(
                "must be sc://host:port (the token comes from remote_token_env, never config)"
            )
        return value


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
