"""Object storage for landing files and canned reports: a local directory or S3.

Assets depend on the ``ObjectStore`` interface; which implementation they get is
decided once, where resources are built, so no asset branches on local vs S3.
Writes are atomic in both: a reader never sees half a report. Locally a write goes to
a temp file that is renamed into place; the temp file of a writer killed mid-write is
removed by the next write of the same key.
"""

from __future__ import annotations

import glob
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.local_links import links_under
from resources.processes import process_alive


class ObjectStore(dg.ConfigurableResource, ABC):
    """Keys are ``/``-separated paths relative to the store's root."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where a key lives, for messages and metadata."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> str:
        """Write atomically; returns the object's URI."""

    @abstractmethod
    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under a prefix, in lexical order."""

    @abstractmethod
    def size(self, key: str) -> int: ...

    def links(self, prefix: str) -> list[tuple[str, str | None]]:
        """Symbolic links under a prefix: (link key, target key, None when the target is
        outside the store). Only a local store has any."""
        return []


def _remove_orphaned_temp_files(path: Path) -> None:
    """Delete temp files an earlier writer of ``path`` left when it was killed mid-write.

    A temp file is named ``.<name>.<pid>.<random>.tmp``; it is an orphan when its
    writer's process no longer exists (a live writer's file is left alone).
    """
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


class LocalObjectStore(ObjectStore):
    """Objects as files under a local directory."""

    root: str = Field(description="Absolute path of the store's root directory.")

    def _path(self, key: str) -> Path:
        path = (Path(self.root) / key).resolve()
        if not path.is_relative_to(Path(self.root).resolve()):
            raise ValueError(f"key escapes the store root: {key!r}")
        return path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphaned_temp_files(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        return str(path)

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = Path(self.root)
        start = self._path(prefix)
        if not start.exists():
            return
        for path in sorted(start.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                yield path.relative_to(base).as_posix()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def links(self, prefix: str) -> list[tuple[str, str | None]]:
        base = Path(self.root)
        found = []
        for link in links_under(base.joinpath(*prefix.split("/"))):
            target = link.resolve()
            inside = target.is_relative_to(base.resolve())
            key = target.relative_to(base.resolve()).as_posix() if inside else None
            found.append((link.relative_to(base).as_posix(), key))
        return sorted(found, key=lambda pair: pair[0])


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket under a prefix; the client is built on first use."""

    bucket: str
    prefix: str = ""
    s3: S3Resource = Field(default_factory=S3Resource)

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}".lstrip("/")

    def _client(self) -> Any:
        return self.s3.get_client()

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def exists(self, key: str) -> bool:
        response = self._client().list_objects_v2(
            Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1
        )
        return any(obj["Key"] == self._key(key) for obj in response.get("Contents", []))

    def read_bytes(self, key: str) -> bytes:
        client = self._client()
        try:
            response = client.get_object(Bucket=self.bucket, Key=self._key(key))
        except client.exceptions.NoSuchKey:
            # The same error a local store raises, so callers handle one kind of "gone".
            raise FileNotFoundError(f"no object {self.uri(key)}") from None
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("AccessDenied", "403"):
                raise PermissionError(f"access denied to {self.uri(key)}") from None
            raise
        body: bytes = response["Body"].read()
        return body

    def write_bytes(self, key: str, data: bytes) -> str:
        # A single PUT is atomic in S3: the object appears whole or not at all.
        self._client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return self.uri(key)

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self._client().get_paginator("list_objects_v2")
        strip = len(self._key(""))
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def size(self, key: str) -> int:
        head = self._client().head_object(Bucket=self.bucket, Key=self._key(key))
        return int(head["ContentLength"])
