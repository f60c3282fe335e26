"""The whole pipeline at once on real components: PostgreSQL, S3 protocol, Spark, Delta.

One module-scoped world, built once:

- a PostgreSQL cluster (password authentication) holding two databases: ``dagster``,
  the Dagster instance's runs, event logs and schedule state, configured by the
  shipped ``deploy/dagster.yaml`` with its ``env:`` credentials filled in here; and
  ``ehr``, the synthetic EHR source, read through ``FLOWEHR_EHR_URL``;
- a moto S3 server (child process) holding the whole lake under ``s3://<bucket>/flowehr``,
  with the CDC landing files uploaded to its ``landing/`` prefix;
- the repository's config files plus a ``config.local.yaml`` overlay pointing the lake
  at the S3 endpoint (the documented per-host override).

Then: the whole graph runs in process (``run_assets``, the ``flowehr run`` workhorse,
one shared Spark session), runs again unchanged, and finally, after changes in the
source database, the real ``flowehr run`` CLI in a subprocess loads the EHR tables by
changelog number, recording its run in PostgreSQL through ``DAGSTER_HOME``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from assets.ehr.bronze_view import read_current
from assets.ehr.etl_lock import ETL_LOCK_TABLE, EtlLockStore
from flowehr_pipelines.run.runner import RunSummary, run_assets
from flowehr_pipelines.synthetic import write_cdc_landing, write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from resources.delta.storage import S3Storage
from resources.delta.store import DeltaTableStore
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.integration.ehr_postgres import EHR_TABLES, copy_sqlite_to_postgres, create_database
from tests.integration.postgres import find_pg_bin, postgres_server
from tests.s3_server import moto_server

# Whole runs on real servers, minutes in all: run by `make test-long` (and .ci/run).
pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.long]

REGION = "eu-west-2"
BUCKET = "flowehr-lake"
PREFIX = "flowehr"
PG_USER = "flowehr"
PG_PASSWORD = "pg-test-secret"  # a throwaway cluster's; passed to Dagster via env only
DAYS = 3
SEED = 7
PRIMARY_KEYS = {
    "patients": "patient_id",
    "visits": "visit_id",
    "observations": "observation_id",
    "lab_results": "lab_result_id",
    "diagnoses": "diagnosis_id",
}
CHANGELOG_SELECTION = "key:bronze/ehr/*"
CONTENT_ZONES = ("bronze", "silver", "gold", "reporting")  # internal/ holds run bookkeeping


@dataclass
class World:
    """The running components and what the runs left behind."""

    endpoint: str
    dagster_url: str
    ehr_url: str
    sqlite_path: Path
    data_dir: Path
    dagster_home: Path
    landing_records: list[dict[str, Any]]
    source_rows: dict[str, int]
    delta: DeltaTableStore
    first: RunSummary
    second: RunSummary
    after_first: dict[str, Any]
    after_second: dict[str, Any]
    cli: subprocess.CompletedProcess[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION)


def _s3_keys(client: Any, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def _delta_tables(client: Any) -> list[tuple[str, ...]]:
    """Every Delta table in the lake, found by its ``_delta_log`` in S3."""
    tables = {
        tuple(key.removeprefix(f"{PREFIX}/").split("/_delta_log/")[0].split("/"))
        for key in _s3_keys(client, f"{PREFIX}/")
        if "/_delta_log/" in key
    }
    return sorted(tables)


def _rows(delta: DeltaTableStore, table: tuple[str, ...]) -> list[str]:
    """A table's rows in a stable order, for comparing contents across runs."""
    return sorted(
        json.dumps(row, sort_keys=True, default=str) for row in delta.read(table).to_pylist()
    )


def _lake_contents(delta: DeltaTableStore, client: Any) -> dict[str, Any]:
    """Rows of every data table and bytes of every report object."""
    contents: dict[str, Any] = {
        "/".join(table): _rows(delta, table)
        for table in _delta_tables(client)
        if table[0] in CONTENT_ZONES
    }
    for key in _s3_keys(client, f"{PREFIX}/reports/"):
        contents[key] = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return contents


def _write_config(config_dir: Path, endpoint: str) -> None:
    """The repository's config plus the documented per-host overlay for this lake."""
    config_dir.mkdir(parents=True)
    for name in ("config.yaml", "config.ci.yaml"):
        shutil.copy(REPO_ROOT / name, config_dir / name)
    (config_dir / "config.local.yaml").write_text(
        f"""lake:
  root: s3://{BUCKET}/{PREFIX}
  s3:
    region: {REGION}
    endpoint_url: {endpoint}
    allow_http: true
    access_key_id_env: AWS_ACCESS_KEY_ID
    secret_access_key_env: AWS_SECRET_ACCESS_KEY
"""
    )


def _upload_landing(client: Any, landing: Path) -> list[dict[str, Any]]:
    """Deliver the CDC files to the S3 landing prefix; returns the records bronze will hold.

    A line is a record when it is a JSON object the CDC contract accepts (docs/CONTRACTS.md
    §4): objects without ``sk`` or a whole ``timestamp``, or with a non-ISO date, are
    quarantined, not counted.
    """
    records: list[dict[str, Any]] = []
    for path in sorted(landing.rglob("*.jsonl")):
        key = f"{PREFIX}/landing/{path.relative_to(landing).as_posix()}"
        client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if _well_formed(record):
                records.append(record)
    return records


def _well_formed(record: Any) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("sk"), str):
        return False
    timestamp = record.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return False
    dates = [record.get(name) for name in ("createddate", "completeddate")]
    return all(d is None or (isinstance(d, str) and (d == "" or d[4:5] == "-")) for d in dates)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    # Not under pytest's tmp tree: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="flowehr-real-"))
    base.chmod(0o755)  # the server's own directory below must be reachable by its user
    work = base / "work"
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            server_url = stack.enter_context(
                postgres_server(base / "pg", user=PG_USER, password=PG_PASSWORD)
            )
            endpoint = stack.enter_context(moto_server())
            mp = stack.enter_context(pytest.MonkeyPatch.context())
            dagster_url = create_database(server_url, "dagster")
            ehr_url = create_database(server_url, "ehr")

            first_day = date.today() - timedelta(days=DAYS - 1)
            sqlite_path = work / "ehr.db"
            work.mkdir(parents=True)
            write_ehr_source(sqlite_path, patients=120, days=DAYS, start_date=first_day, seed=SEED)
            source_rows = copy_sqlite_to_postgres(sqlite_path, ehr_url)

            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.delenv("AWS_PROFILE", raising=False)
            client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
            client.create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            write_cdc_landing(
                work / "landing", days=DAYS, events_per_day=300, start_date=first_day, seed=SEED
            )
            records = _upload_landing(client, work / "landing")

            _write_config(work / "config", endpoint)
            dagster_home = work / "dagster_home"
            dagster_home.mkdir()
            shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
            pg = sa.engine.make_url(dagster_url)
            env = {
                "FLOWEHR_CONFIG_DIR": str(work / "config"),
                "FLOWEHR_ENV": "ci",
                "FLOWEHR_DATA_DIR": str(work / "data"),
                "FLOWEHR_PSEUDONYMISATION_KEY": TEST_KEY,
                "FLOWEHR_EHR_URL": ehr_url,
                "DAGSTER_HOME": str(dagster_home),
                "DAGSTER_PG_HOST": str(pg.host),
                "DAGSTER_PG_PORT": str(pg.port),
                "DAGSTER_PG_DB": str(pg.database),
                "DAGSTER_PG_USERNAME": PG_USER,
                "DAGSTER_PG_PASSWORD": PG_PASSWORD,
                "PYSPARK_PYTHON": sys.executable,
                "SPARK_LOCAL_IP": "127.0.0.1",
            }
            for name, value in env.items():
                mp.setenv(name, value)
            mp.delenv("FLOWEHR_LAKE_ROOT", raising=False)
            seconds["setup"] = time.perf_counter() - started

            from flowehr_pipelines.definitions import defs

            definitions = defs()
            instance = dg.DagsterInstance.get()
            stack.callback(instance.dispose)
            configured = (definitions.resources or {})["delta"]
            assert isinstance(configured.storage, S3Storage)  # the lake really is on S3
            delta = DeltaTableStore(
                storage=S3Storage(
                    root=f"s3://{BUCKET}/{PREFIX}",
                    region=REGION,
                    endpoint_url=endpoint,
                    allow_http=True,
                    access_key_id="testing",
                    secret_access_key="testing",
                )
            )

            mark = time.perf_counter()
            first = run_assets(definitions, instance)
            seconds["first run"] = time.perf_counter() - mark
            after_first = _lake_contents(delta, client)
            mark = time.perf_counter()
            second = run_assets(definitions, instance)
            seconds["second run"] = time.perf_counter() - mark
            after_second = _lake_contents(delta, client)

            apply_source_changes(sqlite_path, seed=SEED, update_fraction=0.1, delete_fraction=0.02)
            copy_sqlite_to_postgres(sqlite_path, ehr_url)
            mark = time.perf_counter()
            cli = subprocess.run(
                [
                    str(Path(sys.executable).with_name("flowehr")),
                    "run",
                    "--select",
                    CHANGELOG_SELECTION,
                ],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            seconds["changelog run (CLI)"] = time.perf_counter() - mark
            seconds["total"] = time.perf_counter() - started
            print(f"real-components timings (s): {seconds}")
            yield World(
                endpoint=endpoint,
                dagster_url=dagster_url,
                ehr_url=ehr_url,
                sqlite_path=sqlite_path,
                data_dir=work / "data",
                dagster_home=dagster_home,
                landing_records=records,
                source_rows=source_rows,
                delta=delta,
                first=first,
                second=second,
                after_first=after_first,
                after_second=after_second,
                cli=cli,
                seconds=seconds,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_runs_succeed_on_postgres_s3_and_a_postgres_source(world: World) -> None:
    assert world.first.success, world.first.failures
    assert world.second.success, world.second.failures
    assert world.cli.returncode == 0, world.cli.stdout[-2000:] + world.cli.stderr[-2000:]
    assert "SUCCESS" in world.cli.stdout


def test_instance_from_the_shipped_dagster_yaml_stores_everything_in_postgres(
    world: World,
) -> None:
    instance = dg.DagsterInstance.from_config(str(world.dagster_home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    finally:
        instance.dispose()

    first_runs = [world.first.run_id, *world.first.extra_run_ids]
    engine = sa.create_engine(world.dagster_url)
    with engine.connect() as db:
        statuses: dict[str, str] = {
            run_id: status
            for run_id, status in db.execute(sa.text("SELECT run_id, status FROM runs"))
        }
        assert all(statuses.get(run_id) == "SUCCESS" for run_id in first_runs), statuses
        assert list(statuses.values()).count("SUCCESS") == len(statuses)
        # flowehr run's runs: its parts (EHR to features, CDC log to reporting) and reports.
        events = db.execute(
            sa.text(
                "SELECT dagster_event_type, asset_key FROM event_logs WHERE run_id IN :runs"
            ).bindparams(sa.bindparam("runs", expanding=True)),
            {"runs": first_runs},
        ).fetchall()
        tables = {
            row[0]
            for row in db.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        }
    engine.dispose()
    kinds = [kind for kind, _ in events]
    materialised = {
        dg.AssetKey.from_db_string(key).to_user_string()  # type: ignore[union-attr]
        for kind, key in events
        if kind == "ASSET_MATERIALIZATION"
    }
    assert kinds.count("STEP_SUCCESS") >= 10 and "STEP_FAILURE" not in kinds
    assert dg.DagsterEventType.RUN_SUCCESS.value in kinds  # stored as PIPELINE_SUCCESS
    assert materialised == {a.key for a in world.first.assets}
    assert {"bronze/ehr/patients", "gold/features/vital_signs"} <= materialised
    assert {"reporting/request_item_status", "reports/completed_batch_report"} <= materialised
    assert {"runs", "event_logs", "jobs", "instigators"} <= tables  # run, event, schedule


def revision_count(observations: list[dict[str, Any]], window: timedelta | None) -> int:
    """Rows of a known-at table: each set's horizon as known then, plus one per later
    charting of a set taken in its window (see transforms.features.horizons)."""
    by_visit: dict[int, list[dict[str, Any]]] = {}
    for row in observations:
        by_visit.setdefault(row["visit_id"], []).append(row)
    rows = set()
    for visit, sets in by_visit.items():
        for h in {o["observed_at"] for o in sets}:
            rows.add((visit, h, h))
            for o in sets:
                known = o["charted_at"] or o["observed_at"]
                inside = o["observed_at"] <= h and (window is None or o["observed_at"] > h - window)
                if inside and known > h:
                    rows.add((visit, h, known))
    return len(rows)


def test_published_tables_in_s3_have_the_expected_rows(world: World) -> None:
    delta = world.delta
    # One feature row per cleaned visit, and per observation set as known at each time
    # (silver drops invalid rows).
    visits = delta.read(("silver", "ehr", "visits")).num_rows
    observations = delta.read(
        ("silver", "ehr", "observations"), columns=["visit_id", "observed_at", "charted_at"]
    ).to_pylist()
    assert 0 < visits <= world.source_rows["visits"]
    assert 0 < len(observations) <= world.source_rows["observations"]
    expected: dict[tuple[str, ...], int] = {
        ("gold", "features", "patient_demographics"): visits,
        ("gold", "features", "outcomes"): visits,
        ("gold", "features", "vital_signs"): revision_count(observations, timedelta(hours=24)),
        ("gold", "features", "news2"): revision_count(observations, None),
    }
    assert expected[("gold", "features", "news2")] > len(observations)  # late charting

    def distinct(prefix: str, column: str) -> int:
        return len({r[column] for r in world.landing_records if r["sk"].startswith(prefix)})

    expected[("reporting", "request_item_status")] = distinct("REQUEST_ITEM#", "requestitemid")
    expected[("reporting", "request_item_plan_status")] = distinct(
        "REQUEST_ITEM_PLAN#", "requestitemplanid"
    )
    expected[("reporting", "client_latest_name")] = distinct("REQUEST_ITEM#", "clientid")
    assert all(count > 0 for count in expected.values())
    tables = _delta_tables(world.s3())
    for table, count in expected.items():
        assert table in tables, f"{'/'.join(table)} not in S3"
        assert delta.table(table).table_uri.startswith(f"s3://{BUCKET}/")
        assert delta.read(table).num_rows == count, "/".join(table)

    instance = dg.DagsterInstance.from_config(str(world.dagster_home))
    try:  # what the event log in PostgreSQL says matches what S3 holds
        for table in expected:
            event = instance.get_latest_materialization_event(dg.AssetKey(list(table)))
            assert event is not None and event.asset_materialization is not None
            recorded = event.asset_materialization.metadata["dagster/row_count"].value
            assert recorded == delta.read(table).num_rows, "/".join(table)
    finally:
        instance.dispose()


def test_reports_are_s3_objects(world: World) -> None:
    client = world.s3()
    keys = _s3_keys(client, f"{PREFIX}/reports/")
    csvs = [key for key in keys if key.endswith(".csv")]
    charts = [key for key in keys if not key.endswith(".csv")]
    uris = {f"s3://{BUCKET}/{key}" for key in csvs}
    assert len(csvs) == world.first.report_count
    assert world.first.report_paths and set(world.first.report_paths) <= uris
    assert {key.split("/")[2] for key in csvs} == {
        "completed_comms_report",
        "completed_batch_report",
    }
    data_rows = 0
    for key in csvs:
        lines = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
        assert lines and lines[0].startswith('"requestid"'), key  # a day may have no rows
        data_rows += len(lines) - 1
    assert data_rows > 0
    for key in charts:
        assert key.endswith("/chart.png")
        assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read(4) == b"\x89PNG"
    assert not (world.data_dir / "lake").exists()  # nothing fell back to a local lake


def test_second_run_leaves_every_table_and_report_as_it_was(world: World) -> None:
    assert world.after_first, "the first run wrote nothing"
    assert set(world.after_second) == set(world.after_first)
    changed = [
        name for name in world.after_first if world.after_first[name] != world.after_second[name]
    ]
    assert changed == []
    # The same graph ran again; only report partitions already written are not due again.
    tables = {a.key for a in world.first.assets if not a.key.startswith("reports/")}
    assert tables <= {a.key for a in world.second.assets}


def test_changelog_run_brings_bronze_level_with_the_postgres_source(world: World) -> None:
    engine = sa.create_engine(world.ehr_url)
    instance = dg.DagsterInstance.from_config(str(world.dagster_home))
    try:
        with engine.connect() as db:
            for table in EHR_TABLES:
                key = PRIMARY_KEYS[table]
                query = sa.text(f'SELECT "{key}", change_seq FROM "{table}"')
                source = {row[0]: row[1] for row in db.execute(query)}
                bronze = read_current(
                    world.delta, ("bronze", "ehr", table), [key], columns=[key, "change_seq"]
                )
                loaded = dict(
                    zip(bronze[key].to_pylist(), bronze["change_seq"].to_pylist(), strict=True)
                )
                assert loaded == source, table
                event = instance.get_latest_materialization_event(
                    dg.AssetKey(["bronze", "ehr", table])
                )
                assert event is not None and event.asset_materialization is not None
                metadata = event.asset_materialization.metadata
                assert metadata["load_mode"].value == "changelog", table
        patients = instance.get_latest_materialization_event(
            dg.AssetKey(["bronze", "ehr", "patients"])
        )
        assert patients is not None and patients.asset_materialization is not None
        updated = patients.asset_materialization.metadata["rows_updated"].value
        assert isinstance(updated, int) and updated > 0
        first = next(a for a in world.first.assets if a.key == "bronze/ehr/patients")
        assert first.metadata["load_mode"] == "bulk"
    finally:
        instance.dispose()
        engine.dispose()


def test_no_etl_lock_is_left_held_in_s3(world: World) -> None:
    locks = EtlLockStore(world.delta, stale_after=timedelta(minutes=30))
    assert locks.all() == []
    # The lock was really taken and released on S3: three loads, each acquire + release.
    version = world.delta.version(ETL_LOCK_TABLE)
    assert version is not None and version >= 5


# -- the ETL lock on S3: racing processes ---------------------------------------------------

_LOCK_CONTENDER = """
import json
import sys
from datetime import timedelta

from assets.ehr.etl_lock import EtlLockHeldError, EtlLockStore, LockOwner
from resources.delta.storage import S3Storage
from resources.delta.store import DeltaTableStore

endpoint, name = sys.argv[1], sys.argv[2]
storage = S3Storage(
    root="s3://lock-race/flowehr", endpoint_url=endpoint, allow_http=True,
    access_key_id="testing", secret_access_key="testing",
)
store = EtlLockStore(DeltaTableStore(storage=storage), stale_after=timedelta(hours=1))
print("ready", flush=True)
held = None
for command in sys.stdin:
    command = command.strip()
    if command.startswith("go"):
        owner = LockOwner(run_id=f"{name}-{command}", host="h", pid=0, purpose="race")
        try:
            held = store.acquire("ehr", owner)
            print(json.dumps({"won": owner.run_id}), flush=True)
        except EtlLockHeldError as exc:
            print(json.dumps({"refused": str(exc)}), flush=True)
    elif command == "release":
        print(json.dumps({"released": held is not None and store.release(held)}), flush=True)
        held = None
"""


def test_etl_lock_on_s3_one_of_racing_processes_wins_each_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes race for a free lock on S3; every log commit is a conditional PUT.

    The serial moto server makes ``If-None-Match`` atomic, as on AWS S3 (see
    ``tests/s3_server.py``); its request recorder shows what delta-rs sent.
    """
    contenders, rounds = 4, 3
    recording = tmp_path / "s3-requests.jsonl"
    monkeypatch.setenv("MOTO_RECORDER_FILEPATH", str(recording))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto_server(serial=True) as endpoint:
        boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(
            Bucket="lock-race", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        start = urllib.request.Request(f"{endpoint}/moto-api/recorder/start-recording", b"")
        urllib.request.urlopen(start, timeout=10).close()
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _LOCK_CONTENDER, endpoint, f"p{i}"],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(contenders)
        ]
        try:

            def tell_all(command: str) -> list[dict[str, Any]]:
                for process in processes:
                    assert process.stdin is not None
                    process.stdin.write(command + "\n")
                    process.stdin.flush()
                return [json.loads(p.stdout.readline()) for p in processes]  # type: ignore[union-attr]

            for process in processes:
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            for round_ in range(rounds):
                answers = tell_all(f"go{round_}")
                winners = [a["won"] for a in answers if "won" in a]
                assert len(winners) == 1, answers
                refusals = [a["refused"] for a in answers if "refused" in a]
                assert len(refusals) == contenders - 1
                assert all(winners[0] in message for message in refusals)
                assert sum(a["released"] for a in tell_all("release")) == 1
        finally:
            for process in processes:
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=60)

        delta = DeltaTableStore(
            storage=S3Storage(
                root="s3://lock-race/flowehr",
                endpoint_url=endpoint,
                allow_http=True,
                access_key_id="testing",
                secret_access_key="testing",
            )
        )
        assert EtlLockStore(delta, stale_after=timedelta(hours=1)).all() == []
        version = delta.version(ETL_LOCK_TABLE)
        assert version == 2 * rounds - 1  # one acquire and one release per round, no more

    commits = [
        entry
        for entry in map(json.loads, recording.read_text().splitlines())
        if entry["method"] == "PUT"
        and "/internal/etl_locks/_delta_log/" in entry["url"]
        and entry["url"].split("?")[0].endswith(".json")
    ]
    assert commits, "no log commit was recorded"
    assert all(entry["headers"].get("If-None-Match") == "*" for entry in commits)
    attempts = len(commits)
    print(f"lock race: {attempts} conditional commit PUTs for {version + 1} versions")
    assert attempts >= version + 1
