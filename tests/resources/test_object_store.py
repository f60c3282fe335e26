"""Object stores on a local directory and on S3 (a local moto server on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from dagster_aws.s3 import S3Resource

from resources.delta.storage import S3Storage
from resources.delta.store import DeltaTableStore, Matched
from resources.object_store import LocalObjectStore, S3ObjectStore
from tests.s3_server import moto_server

REGION = "eu-west-2"


@pytest.fixture
def local(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(root=str(tmp_path / "objects"))


def test_local_object_store_round_trip(local: LocalObjectStore, tmp_path: Path):
    uri = local.write_bytes("reports/2026/03/c1.csv", b"a,b\n1,2\n")
    assert uri == str(tmp_path / "objects" / "reports/2026/03/c1.csv")
    assert local.uri("reports/2026/03/c1.csv") == uri
    assert local.exists("reports/2026/03/c1.csv")
    assert local.read_bytes("reports/2026/03/c1.csv") == b"a,b\n1,2\n"
    assert local.size("reports/2026/03/c1.csv") == 8


def test_local_object_store_overwrites_whole_object(local: LocalObjectStore):
    local.write_bytes("k.txt", b"a much longer first version")
    local.write_bytes("k.txt", b"short")
    assert local.read_bytes("k.txt") == b"short"


def test_local_object_store_lists_links_with_their_targets(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    store.write_bytes("bronze/p/a.parquet", b"x")
    (tmp_path / "gold").mkdir()
    (tmp_path / "gold" / "in_lake").symlink_to(tmp_path / "bronze" / "p")
    (tmp_path / "gold" / "out").symlink_to("/")
    assert store.links("gold") == [("gold/in_lake", "bronze/p"), ("gold/out", None)]
    assert store.links("reports") == []


def test_local_object_store_missing_key(local: LocalObjectStore):
    assert not local.exists("nope.csv")
    assert list(local.list_keys("nope")) == []
    with pytest.raises(FileNotFoundError):
        local.read_bytes("nope.csv")


def test_local_object_store_exists_is_false_for_directories(local: LocalObjectStore):
    local.write_bytes("dir/file.txt", b"x")
    assert not local.exists("dir")


def test_local_object_store_lists_keys_in_order(local: LocalObjectStore):
    for key in ("b/2.txt", "a/1.txt", "b/1.txt", "b/sub/3.txt", "c.txt"):
        local.write_bytes(key, b"x")
    assert list(local.list_keys("b")) == ["b/1.txt", "b/2.txt", "b/sub/3.txt"]
    assert list(local.list_keys("")) == ["a/1.txt", "b/1.txt", "b/2.txt", "b/sub/3.txt", "c.txt"]


def test_local_object_store_leaves_no_temp_files(local: LocalObjectStore, tmp_path: Path):
    for i in range(3):
        local.write_bytes(f"reports/r{i}.csv", b"data")
    local.write_bytes("reports/r0.csv", b"again")
    files = sorted(p.name for p in (tmp_path / "objects").rglob("*") if p.is_file())
    assert files == ["r0.csv", "r1.csv", "r2.csv"]


def test_local_object_store_removes_the_temp_file_of_a_killed_writer(
    local: LocalObjectStore, tmp_path: Path
):
    """A writer killed between creating its temp file and renaming it leaves the file."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL
    )
    reports = tmp_path / "objects" / "reports"
    reports.mkdir(parents=True)
    orphan = reports / f".r0.csv.{child.pid}.0123abcd.tmp"
    orphan.write_bytes(b"half a rep")
    live = reports / f".r0.csv.{os.getpid()}.4567ef01.tmp"  # a writer still at work
    live.write_bytes(b"in progress")
    local.write_bytes("reports/r0.csv", b"data")
    assert orphan.exists(), "the writer is alive: its temp file stays"
    child.send_signal(signal.SIGKILL)
    child.wait()
    local.write_bytes("reports/r0.csv", b"data again")
    assert sorted(p.name for p in reports.iterdir()) == [live.name, "r0.csv"]
    assert list(local.list_keys("reports")) == ["reports/r0.csv"]


@pytest.mark.parametrize("key", ["../outside.txt", "a/../../outside.txt", "/etc/passwd"])
def test_local_object_store_rejects_keys_escaping_root(
    local: LocalObjectStore, tmp_path: Path, key
):
    with pytest.raises(ValueError, match="escapes the store root"):
        local.write_bytes(key, b"x")
    with pytest.raises(ValueError, match="escapes the store root"):
        local.read_bytes(key)
    assert not (tmp_path / "outside.txt").exists()


def test_local_object_store_rejects_sibling_with_shared_prefix(tmp_path: Path):
    store = LocalObjectStore(root=str(tmp_path / "objects"))
    with pytest.raises(ValueError, match="escapes the store root"):
        store.write_bytes("../objects-evil/x.txt", b"x")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    name = f"lake-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture
def s3_store(moto_endpoint: str, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(
        bucket=bucket,
        prefix="lake",
        s3=S3Resource(endpoint_url=moto_endpoint, region_name=REGION),
    )


def test_s3_object_store_round_trip(s3_store: S3ObjectStore, bucket: str, moto_endpoint: str):
    uri = s3_store.write_bytes("reports/c1.csv", b"a,b\n1,2\n")
    assert uri == f"s3://{bucket}/lake/reports/c1.csv"
    assert s3_store.exists("reports/c1.csv")
    assert s3_store.read_bytes("reports/c1.csv") == b"a,b\n1,2\n"
    assert s3_store.size("reports/c1.csv") == 8
    raw = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    assert raw.get_object(Bucket=bucket, Key="lake/reports/c1.csv")["Body"].read() == b"a,b\n1,2\n"


def test_s3_object_store_exists_needs_exact_key(s3_store: S3ObjectStore):
    s3_store.write_bytes("reports/c1.csv.bak", b"x")
    assert not s3_store.exists("reports/c1.csv")
    assert not s3_store.exists("reports")


def test_s3_object_store_lists_keys_relative_to_prefix(s3_store: S3ObjectStore):
    for key in ("b/2.txt", "a/1.txt", "b/1.txt", "b/sub/3.txt"):
        s3_store.write_bytes(key, b"x")
    assert list(s3_store.list_keys("b/")) == ["b/1.txt", "b/2.txt", "b/sub/3.txt"]
    assert list(s3_store.list_keys("")) == ["a/1.txt", "b/1.txt", "b/2.txt", "b/sub/3.txt"]
    assert list(s3_store.list_keys("zzz")) == []


def test_s3_object_store_lists_beyond_one_page(s3_store: S3ObjectStore):
    keys = [f"many/{i:04d}.txt" for i in range(1_001)]  # one more than a page
    client = s3_store.s3.get_client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=s3_store.bucket, Key=f"lake/{k}"), keys))
    assert list(s3_store.list_keys("many/")) == keys


def test_s3_object_store_without_prefix(moto_endpoint: str, bucket: str):
    store = S3ObjectStore(bucket=bucket, s3=S3Resource(endpoint_url=moto_endpoint))
    store.write_bytes("top.txt", b"x")
    assert store.uri("top.txt") == f"s3://{bucket}/top.txt"
    assert list(store.list_keys("")) == ["top.txt"]


def test_delta_store_on_s3_writes_merges_and_reads(moto_endpoint: str, bucket: str):
    store = DeltaTableStore(
        storage=S3Storage(
            root=f"s3://{bucket}/lake",
            endpoint_url=moto_endpoint,
            allow_http=True,
            access_key_id="testing",
            secret_access_key="testing",
        )
    )
    table = ("silver", "things")
    schema = pa.schema([("id", pa.int64()), ("v", pa.int64())])
    assert store.read_or_none(table) is None
    store.append(table, pa.Table.from_pylist([{"id": 1, "v": 1}, {"id": 2, "v": 1}], schema))
    metrics = store.merge(
        table,
        pa.Table.from_pylist([{"id": 2, "v": 2}, {"id": 3, "v": 1}], schema),
        keys=["id"],
        matched=[Matched(where="s.v > t.v")],
    )
    assert metrics["num_target_rows_updated"] == 1
    assert metrics["num_target_rows_inserted"] == 1
    assert sorted(store.read(table).to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "v": 1},
        {"id": 2, "v": 2},
        {"id": 3, "v": 1},
    ]
    assert store.read(table, version=0).num_rows == 2
    assert store.read(table, columns=["id"], filters=[("v", "=", 2)]).to_pylist() == [{"id": 2}]
    assert store.uri(table) == f"s3://{bucket}/lake/silver/things"
