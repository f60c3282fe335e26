"""Where the lake lives, a local directory or an S3 prefix: delta-rs options and a filesystem."""

from __future__ import annotations

from typing import Literal

import dagster as dg
import pyarrow.fs as pa_fs
from pydantic import Field


class LocalStorage(dg.Config):
    """Delta tables in a local directory."""

    provider: Literal["local"] = "local"
    root: str = Field(description="Absolute path of the lake root.")

    def options(self) -> dict[str, str]:
        return {}

    def filesystem(self, uri: str) -> pa_fs.FileSystem:
        return pa_fs.SubTreeFileSystem(uri, pa_fs.LocalFileSystem())


class S3Storage(dg.Config):
    """Delta tables under an ``s3://bucket/prefix`` on AWS or an S3-compatible store."""

    provider: Literal["s3"] = "s3"
    root: str = Field(description="s3://bucket/prefix of the lake root.")
    region: str = "eu-west-2"
    endpoint_url: str | None = None
    allow_http: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def options(self) -> dict[str, str]:
        """delta-rs storage options.

        delta-rs 1.6 writes each log commit as one PUT with ``If-None-Match: *`` (S3
        conditional writes; ``conditional_put: etag`` is object_store's default, set
        here so it stays on), so of two writers committing the same version exactly one
        wins and no DynamoDB locking provider is needed. Commits involve no rename, so
        ``AWS_S3_ALLOW_UNSAFE_RENAME`` is not set. A store that ignores ``If-None-Match``
        would make concurrent commits unsafe: use one that honours it (AWS S3, MinIO, R2).
        """
        opts = {"AWS_REGION": self.region, "conditional_put": "etag"}
        if self.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        if self.access_key_id and self.secret_access_key:
            opts["AWS_ACCESS_KEY_ID"] = self.access_key_id
            opts["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        return opts

    def filesystem(self, uri: str) -> pa_fs.FileSystem:
        endpoint = self.endpoint_url or None
        s3 = pa_fs.S3FileSystem(
            region=self.region,
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme="http" if self.allow_http else "https",
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
        )
        return pa_fs.SubTreeFileSystem(uri.removeprefix("s3://"), s3)
