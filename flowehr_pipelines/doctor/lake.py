"""The lake is writable: a probe object written and removed, locally or on S3.

On S3 the credentials are looked for first, so a missing one is named as such rather
than surfacing as the storage library's "Generic S3 error" or "Operation not
supported"; the probe also checks that the store honours conditional writes
(``If-None-Match: *``), which concurrent Delta commits depend on (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from flowehr_pipelines.config import Settings
from flowehr_pipelines.doctor.findings import Finding, fail, first_line, ok
from flowehr_pipelines.storage_errors import NO_S3_CREDENTIALS

PROBE_PREFIX = "internal/_doctor"


def check_lake(settings: Settings, *, timeout: float, clock: list[tuple[str, datetime]]) -> Finding:
    """Write and delete one probe object under the lake root.

    Args:
        clock: receives the S3 server's time (its ``Date`` header) for the clock check.
    """
    if settings.lake_is_s3:
        return _check_s3(settings, timeout=timeout, clock=clock)
    return _check_local(Path(settings.lake_root))


def _check_local(root: Path) -> Finding:
    check = "lake"
    probe = root / PROBE_PREFIX / f"probe-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"flowehr doctor")
        probe.unlink()
    except OSError as exc:
        return fail(check, f"{root} is not writable: {exc.strerror or first_line(exc)}")
    return ok(check, f"{root} writable")


def s3_client(settings: Settings, *, timeout: float) -> tuple[Any, bool]:
    """A boto3 client for the lake and whether any credentials were found."""
    import boto3
    from botocore.config import Config

    s3 = settings.lake.s3
    key_id = settings.secret(s3.access_key_id_env)
    secret = settings.secret(s3.secret_access_key_env)
    session = boto3.Session(
        aws_access_key_id=key_id if key_id and secret else None,
        aws_secret_access_key=secret if key_id and secret else None,
        region_name=s3.region,
    )
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
    client = session.client(
        "s3", endpoint_url=s3.endpoint_url or None, use_ssl=not s3.allow_http, config=config
    )
    return client, session.get_credentials() is not None


def _check_s3(settings: Settings, *, timeout: float, clock: list[tuple[str, datetime]]) -> Finding:
    from botocore.exceptions import BotoCoreError, ClientError

    check = "lake"
    root = settings.lake_root
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    client, has_credentials = s3_client(settings, timeout=timeout)
    if not has_credentials:
        return fail(check, f"{root}: {NO_S3_CREDENTIALS}")
    key = f"{prefix.strip('/')}/{PROBE_PREFIX}/probe-{uuid.uuid4().hex}".lstrip("/")
    try:
        response = client.put_object(Bucket=bucket, Key=key, Body=b"flowehr doctor")
        _note_server_time(response, clock)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=b"again", IfNoneMatch="*")
            honoured = False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
            honoured = True
        client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return fail(check, f"{root} not writable: {error.get('Code')}: {error.get('Message')}")
    except BotoCoreError as exc:
        return fail(check, f"{root} unreachable: {first_line(exc)}")
    if not honoured:
        return fail(
            check,
            f"{root} writable, but the store ignores If-None-Match: concurrent Delta "
            "commits could overwrite each other (use AWS S3, MinIO or R2)",
        )
    return ok(check, f"{root} writable; conditional writes honoured")


def _note_server_time(response: dict[str, Any], clock: list[tuple[str, datetime]]) -> None:
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        clock.append(("S3 endpoint", parsedate_to_datetime(date).astimezone(UTC)))


def s3_credentials_problem(settings: Settings) -> str | None:
    """What to set when an S3 lake has no credentials anywhere, else None.

    Asked before a run starts, so a missing credential is one line rather than the
    storage library's "Operation not supported" from inside the run's first step.
    """
    if not settings.lake_is_s3:
        return None
    _client, has_credentials = s3_client(settings, timeout=5)
    return None if has_credentials else f"{settings.lake_root}: {NO_S3_CREDENTIALS}"
