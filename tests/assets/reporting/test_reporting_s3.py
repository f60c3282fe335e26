"""The reporting domain on S3 (a local moto server on 127.0.0.1): sensor, ingestion, reports.

The same code paths as on a local directory, through the ``ObjectStore`` and
``DeltaTableStore`` resources built for S3: nothing in the domain branches on storage.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from assets.reporting.ingestion import pending_landing_keys
from assets.reports.writing import (
    completed_comms_report_key,
    completed_comms_rows,
    write_completed_comms_reports,
)
from flowehr_pipelines.automation.reporting import evaluate_landing
from resources.delta.storage import S3Storage
from resources.delta.store import DeltaTableStore
from resources.object_store import S3ObjectStore
from resources.pseudonymiser import Pseudonymiser
from tests.assets.reporting_world import Lake, item, lines, plan
from tests.conftest import TEST_KEY
from tests.s3_server import moto_server

REGION = "eu-west-2"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3_lake(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Lake:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    delta = DeltaTableStore(
        storage=S3Storage(
            root=f"s3://{bucket}/flowehr",
            region=REGION,
            endpoint_url=endpoint,
            allow_http=True,
            access_key_id="testing",
            secret_access_key="testing",
        )
    )
    objects = S3ObjectStore(
        bucket=bucket, prefix="flowehr", s3=S3Resource(endpoint_url=endpoint, region_name=REGION)
    )
    return Lake(
        root=Path(f"/{bucket}"),  # not a local path; the lake is addressed by the stores
        delta=delta,
        objects=objects,
        pseudonymiser=Pseudonymiser(key=TEST_KEY),
    )


def test_landing_to_reports_on_s3(s3_lake: Lake):
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    records = [
        item("i1", yesterday, "DELIVERED", completed=yesterday),
        plan("p1", yesterday, "DELIVERED", item_id="i1", completed=yesterday),
        item("i2", yesterday, "SENDING"),
    ]
    key = s3_lake.land("part-1", [*lines(records), "not json"], day=yesterday.strftime("%Y/%m/%d"))
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral())
    tick = evaluate_landing(context, s3_lake.objects, s3_lake.delta)
    assert isinstance(tick, dg.SensorResult) and len(tick.run_requests or []) == 1
    assert pending_landing_keys(s3_lake.objects, s3_lake.delta) == [key]

    stats = s3_lake.ingest(now)
    assert (stats.records, stats.quarantined) == (3, 1)
    assert s3_lake.ingest(now).files_already_ingested == 1
    assert pending_landing_keys(s3_lake.objects, s3_lake.delta) == []
    s3_lake.project(now)
    s3_lake.aggregate(now)
    assert s3_lake.staging("request_item_status").num_rows == 2

    items = s3_lake.staging("request_item_status")
    day = next(r["completeddate"] for r in items.to_pylist() if r["requestitemid"] == "i1")
    rows = completed_comms_rows(
        items=items,
        plans=s3_lake.staging("request_item_plan_status"),
        report_date=day,
        timezone="Europe/London",
    )
    writes = write_completed_comms_reports(
        rows=rows,
        clients=["client-a"],
        report_date=day,
        objects=s3_lake.objects,
    )
    written, existing = writes.written, writes.existing
    assert written == [completed_comms_report_key("client-a", day)] and existing == []
    assert s3_lake.objects.uri(written[0]).startswith("s3://")
    assert b"i1" in s3_lake.objects.read_bytes(written[0])
