"""Turn Settings into resources, for the code location and the CLI commands.

Used by the code location, the CLI, the privacy scan and the researcher reader alike.
Only the chosen environment's resources are built. For Dagster every secret is passed
as ``dg.EnvVar``, so it is read at run launch and never shown in the UI; code that
connects outside Dagster asks for ``direct=True`` and gets the value captured when the
settings loaded.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from assets.ehr.settings import DataSourceConnection
from flowehr_pipelines.config import ReaderSettings, Settings
from flowehr_pipelines.integrations import build_integration_resources
from resources.databricks import ENTRYPOINT_RELATIVE_PATH, DatabricksPipesResource
from resources.delta.storage import LocalStorage, S3Storage
from resources.delta.store import DeltaTableStore
from resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore
from resources.pseudonymiser import PSEUDONYMISATION_KEY_ENV, Pseudonymiser
from resources.settings import ConfigError
from resources.spark import SparkResource
from resources.sql_source import SqlSourceResource


def _env_or_none(name: str | None) -> Any:
    return dg.EnvVar(name) if name else None


def build_delta_store(settings: Settings) -> DeltaTableStore:
    if not settings.lake_is_s3:
        return DeltaTableStore(storage=LocalStorage(root=settings.lake_root))
    s3 = settings.lake.s3
    return DeltaTableStore(
        storage=S3Storage(
            root=settings.lake_root,
            region=s3.region,
            endpoint_url=s3.endpoint_url or None,
            allow_http=s3.allow_http,
            access_key_id=_env_or_none(s3.access_key_id_env),
            secret_access_key=_env_or_none(s3.secret_access_key_env),
        )
    )


def build_object_store(settings: Settings) -> ObjectStore:
    if not settings.lake_is_s3:
        return LocalObjectStore(root=settings.lake_root)
    s3 = settings.lake.s3
    bucket, _, prefix = settings.lake_root.removeprefix("s3://").partition("/")
    return S3ObjectStore(
        bucket=bucket,
        prefix=prefix,
        s3=S3Resource(
            region_name=s3.region,
            endpoint_url=s3.endpoint_url or None,
            use_ssl=not s3.allow_http,
            aws_access_key_id=_env_or_none(s3.access_key_id_env),
            aws_secret_access_key=_env_or_none(s3.secret_access_key_env),
        ),
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource the assets need, keyed as the assets name them."""
    resources: dict[str, Any] = {
        "delta": build_delta_store(settings),
        "objects": build_object_store(settings),
        "spark": SparkResource(
            master=settings.spark.master,
            conf=settings.spark.conf,
            remote=settings.spark.remote,
            remote_token=_env_or_none(settings.spark.remote_token_env),
            connect_timeout_seconds=settings.spark.connect_timeout_seconds,
        ),
        "pseudonymiser": build_pseudonymiser(settings),
    }
    if settings.compute == "databricks":
        resources["feature_jobs"] = build_feature_job_resource(settings)
    for connection in settings.data_source_connections:
        resources[connection.name] = build_sql_source(settings, connection)
    resources.update(build_integration_resources(settings))
    return resources


def build_pseudonymiser(settings: Settings) -> Pseudonymiser:
    """The key by name from the environment, or the embedded environment's key file."""
    key_file = settings.pseudonymisation_key_file
    if key_file is not None:
        return Pseudonymiser(key_file=str(key_file))
    return Pseudonymiser(key=dg.EnvVar(PSEUDONYMISATION_KEY_ENV))


def build_sql_source(
    settings: Settings, connection: DataSourceConnection, *, direct: bool = False
) -> SqlSourceResource:
    """One configured source; ``direct`` for use outside Dagster (password resolved)."""
    password = (
        settings.secret(connection.password_env)
        if direct
        else _env_or_none(connection.password_env)
    )
    return SqlSourceResource(url=settings.source_url(connection), password=password)


def build_reader_store(reader: ReaderSettings) -> DeltaTableStore:
    """A researcher's read-side store: the lake root and storage options, nothing more."""
    if not reader.lake_root.startswith("s3://"):
        return DeltaTableStore(storage=LocalStorage(root=reader.lake_root))
    return DeltaTableStore(
        storage=S3Storage(
            root=reader.lake_root,
            region=reader.region,
            endpoint_url=reader.endpoint_url,
            allow_http=reader.allow_http,
        )
    )


def build_feature_job_resource(settings: Settings) -> DatabricksPipesResource:
    """The Databricks job resource for ``compute: databricks``; nothing connects here.

    Raises:
        ConfigError: when the workspace host or a cluster is not configured.
    """
    config = settings.databricks
    if not config.host:
        raise ConfigError("databricks.host is required when compute is 'databricks'")
    if not (config.existing_cluster_id or config.new_cluster):
        raise ConfigError(
            "databricks: set existing_cluster_id or new_cluster when compute is 'databricks'"
        )
    python_file = config.entrypoint or (
        f"{config.workspace_dir.rstrip('/')}/{ENTRYPOINT_RELATIVE_PATH}"
    )
    return DatabricksPipesResource(
        host=config.host,
        token=dg.EnvVar(config.token_env),
        existing_cluster_id=config.existing_cluster_id or None,
        new_cluster=config.new_cluster,
        python_file=python_file,
        libraries=config.libraries,
        secret_scope=config.secret_scope,
        pseudonymisation_secret_key=config.pseudonymisation_secret_key,
        timeout_seconds=config.timeout_seconds,
        poll_interval_seconds=config.poll_interval_seconds,
    )
