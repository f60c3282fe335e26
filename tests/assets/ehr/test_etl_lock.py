"""The per-source ETL lock: exclusion, stale locks, heartbeats, the CLI, and S3."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from click.testing import CliRunner

from assets.ehr.etl_lock import (
    ETL_LOCK_TABLE,
    EtlLockHeldError,
    EtlLockLostError,
    EtlLockStore,
    LockOwner,
    SourceLock,
    format_duration,
    process_alive,
)
from assets.ehr.etl_state import EtlStateStore
from flowehr_pipelines.cli import main
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.synthetic import write_ehr_source
from resources.delta.storage import S3Storage
from resources.delta.store import DeltaTableStore
from tests.lakes import local_store

STALE_AFTER = timedelta(minutes=120)


class Clock:
    """A settable clock, so staleness is tested without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def delta(tmp_path: Path) -> DeltaTableStore:
    return local_store(tmp_path / "lake")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def locks(delta: DeltaTableStore, clock: Clock) -> EtlLockStore:
    return EtlLockStore(delta, stale_after=STALE_AFTER, clock=clock)


def held(locks: EtlLockStore, source: str = "ehr") -> SourceLock:
    lock = locks.holder(source)
    assert lock is not None, f"nobody holds the {source} lock"
    return lock


def owner(run_id: str, *, host: str = "worker-1", pid: int = 4242) -> LockOwner:
    return LockOwner(run_id=run_id, host=host, pid=pid, purpose="bronze load")


def test_etl_lock_is_free_until_acquired_and_after_release(locks: EtlLockStore) -> None:
    assert locks.holder("ehr") is None
    lock = locks.acquire("ehr", owner("run-a"))
    assert locks.holder("ehr") == lock
    assert locks.release(lock)
    assert locks.holder("ehr") is None
    assert locks.all() == []


def test_etl_lock_second_load_refuses_naming_the_owner(locks: EtlLockStore, clock: Clock) -> None:
    locks.acquire("ehr", owner("run-a", host="etl-host-7", pid=31337))
    clock.now += timedelta(minutes=5, seconds=12)
    with pytest.raises(EtlLockHeldError) as error:
        locks.acquire("ehr", owner("run-b"))
    message = str(error.value)
    assert "source 'ehr' is locked by bronze load run run-a" in message
    assert "host etl-host-7 (pid 31337)" in message
    assert "held for 5m12s" in message
    assert "\n" not in message
    assert held(locks).run_id == "run-a"  # the refused load changed nothing


def test_etl_lock_is_per_source(locks: EtlLockStore) -> None:
    first = locks.acquire("ehr", owner("run-a"))
    second = locks.acquire("lims", owner("run-b"))
    assert {lock.source for lock in locks.all()} == {"ehr", "lims"}
    assert locks.release(first)
    assert locks.holder("lims") == second


def test_etl_lock_same_run_takes_its_own_lock_over(locks: EtlLockStore) -> None:
    first = locks.acquire("ehr", owner("run-a", pid=1))
    retried = locks.acquire("ehr", owner("run-a", pid=2))  # a retried step of the same run
    assert retried.token != first.token
    assert held(locks).pid == 2


def test_etl_lock_stale_lock_is_reported_then_broken_with_a_warning(
    locks: EtlLockStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    dead = locks.acquire("ehr", owner("run-dead", host="gone-host", pid=99))
    clock.now += STALE_AFTER - timedelta(seconds=1)
    with pytest.raises(EtlLockHeldError):
        locks.acquire("ehr", owner("run-b"))  # not stale yet
    clock.now += timedelta(seconds=2)
    assert held(locks).is_stale(clock.now, STALE_AFTER)
    with caplog.at_level(logging.WARNING):
        new = locks.acquire("ehr", owner("run-b"))
    assert "breaking stale lock on source 'ehr': bronze load run run-dead on host gone-host" in (
        caplog.text
    )
    assert "held for 2h00m" in caplog.text
    assert locks.holder("ehr") == new
    assert not locks.release(dead)  # the dead load cannot release the new holder's lock
    assert locks.holder("ehr") == new


def exited_pid() -> int:
    """The pid of a process on this host that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_etl_lock_of_a_dead_process_on_this_host_is_broken_at_once_naming_the_owner(
    locks: EtlLockStore, caplog: pytest.LogCaptureFixture
) -> None:
    here = socket.gethostname()
    pid = exited_pid()
    dead = locks.acquire("ehr", owner("run-killed", host=here, pid=pid))
    assert held(locks).owner_is_dead()
    with caplog.at_level(logging.WARNING):
        new = locks.acquire("ehr", owner("run-next"))  # no time has passed: not stale
    assert (
        f"breaking lock on source 'ehr' whose owner process is gone: bronze load run "
        f"run-killed on host {here} (pid {pid})"
    ) in caplog.text
    assert locks.holder("ehr") == new
    assert not locks.release(dead)


def test_etl_lock_of_a_zombie_process_is_broken_at_once(locks: EtlLockStore) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        stat = Path(f"/proc/{child.pid}/stat")
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "child did not exit"
            time.sleep(0.05)
        locks.acquire("ehr", owner("run-zombie", host=socket.gethostname(), pid=child.pid))
        assert locks.acquire("ehr", owner("run-next")).run_id == "run-next"
    finally:
        child.wait()


def test_etl_lock_of_a_live_process_on_this_host_waits_for_staleness(
    locks: EtlLockStore, clock: Clock
) -> None:
    live = owner("run-live", host=socket.gethostname(), pid=os.getpid())
    locks.acquire("ehr", live)
    assert not held(locks).owner_is_dead()
    with pytest.raises(EtlLockHeldError, match="run-live"):
        locks.acquire("ehr", owner("run-next"))
    clock.now += STALE_AFTER + timedelta(seconds=1)
    assert locks.acquire("ehr", owner("run-next")).run_id == "run-next"


def test_etl_lock_of_another_host_is_judged_by_heartbeat_only(locks: EtlLockStore) -> None:
    # The pid is dead here, but it names a process on another machine.
    locks.acquire("ehr", owner("run-remote", host="worker-9", pid=exited_pid()))
    assert not held(locks).owner_is_dead()
    with pytest.raises(EtlLockHeldError, match="run-remote"):
        locks.acquire("ehr", owner("run-next"))


def test_process_alive_tells_live_from_gone() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(exited_pid())
    assert not process_alive(0)


def test_etl_lock_heartbeat_keeps_a_long_load_fresh(locks: EtlLockStore, clock: Clock) -> None:
    lock = locks.acquire("ehr", owner("run-a"))
    for _ in range(5):
        clock.now += timedelta(minutes=100)
        lock = locks.heartbeat(lock)
    assert lock.age(clock.now) == timedelta(minutes=500)
    with pytest.raises(EtlLockHeldError):
        locks.acquire("ehr", owner("run-b"))


def test_etl_lock_holder_whose_lock_was_broken_stops_at_next_heartbeat(
    locks: EtlLockStore, clock: Clock
) -> None:
    lock = locks.acquire("ehr", owner("run-a"))
    clock.now += STALE_AFTER * 2  # run-a hung (say, a long GC pause or a lost network)
    locks.acquire("ehr", owner("run-b"))
    with pytest.raises(EtlLockLostError, match="taken by bronze load run run-b"):
        locks.heartbeat(lock)


def test_etl_lock_hold_releases_on_error_and_beats_on_schedule(
    locks: EtlLockStore, clock: Clock, delta: DeltaTableStore
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with locks.hold("ehr", owner("run-a"), heartbeat_every=timedelta(minutes=1)) as beat:
            version = delta.version(ETL_LOCK_TABLE)
            assert version is not None
            beat()  # too soon: no commit
            assert delta.version(ETL_LOCK_TABLE) == version
            clock.now += timedelta(minutes=2)
            beat()
            assert delta.version(ETL_LOCK_TABLE) == version + 1
            assert held(locks).heartbeat_at == clock.now
            raise RuntimeError("boom")
    assert locks.holder("ehr") is None


def test_etl_lock_racing_loads_exactly_one_wins(delta: DeltaTableStore) -> None:
    contenders = 6
    store = EtlLockStore(delta, stale_after=STALE_AFTER)
    barrier = threading.Barrier(contenders)
    winners: list[str] = []
    refused: list[str] = []

    def contend(i: int) -> None:
        barrier.wait()
        try:
            store.acquire("ehr", owner(f"run-{i}"))
            winners.append(f"run-{i}")
        except EtlLockHeldError:
            refused.append(f"run-{i}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert len(refused) == contenders - 1
    assert held(store).run_id == winners[0]


def test_replace_if_version_refuses_a_stale_version(delta: DeltaTableStore) -> None:
    table = ("internal", "cas")
    one, two = pa.table({"v": [1]}), pa.table({"v": [2]})
    assert delta.replace_if_version(table, one, expected_version=None)
    assert not delta.replace_if_version(table, two, expected_version=None)
    assert delta.replace_if_version(table, two, expected_version=0)
    assert not delta.replace_if_version(table, one, expected_version=0)  # someone moved on
    assert delta.read(table).column("v").to_pylist() == [2]


def test_format_duration_reads_naturally() -> None:
    assert format_duration(timedelta(seconds=8)) == "8s"
    assert format_duration(timedelta(minutes=3, seconds=2)) == "3m02s"
    assert format_duration(timedelta(hours=2, minutes=5, seconds=59)) == "2h05m"
    assert format_duration(timedelta(seconds=-3)) == "0s"


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli_lake(flowehr_env: Path) -> Iterator[DeltaTableStore]:
    settings = load_settings()
    source = flowehr_env / "source" / "ehr.db"
    write_ehr_source(source, patients=12, days=3, start_date=date(2026, 3, 1), seed=3)
    yield build_delta_store(settings)


def test_cli_clear_state_refuses_while_a_load_holds_the_lock(cli_lake: DeltaTableStore) -> None:
    state = EtlStateStore(cli_lake)
    state.set("ehr", "patients", changelog_number=10, load_mode="bulk", rows_loaded=10)
    lock = EtlLockStore(cli_lake, stale_after=STALE_AFTER).acquire(
        "ehr", owner("run-live", host="etl-host", pid=77)
    )
    result = CliRunner().invoke(main, ["etl", "clear-state", "--yes"])
    assert result.exit_code == 2
    assert "refusing to change ETL state" in result.output
    assert "run run-live on host etl-host (pid 77)" in result.output
    assert state.get("ehr", "patients") is not None

    EtlLockStore(cli_lake, stale_after=STALE_AFTER).release(lock)
    result = CliRunner().invoke(main, ["etl", "clear-state", "--yes"])
    assert result.exit_code == 0, result.output
    assert "ehr: cleared 1 changelog number(s)" in result.output
    assert state.get("ehr", "patients") is None
    assert EtlLockStore(cli_lake, stale_after=STALE_AFTER).holder("ehr") is None


def test_cli_clear_state_breaks_a_stale_lock_with_a_warning(cli_lake: DeltaTableStore) -> None:
    long_ago = Clock()
    long_ago.now = datetime.now(UTC) - timedelta(hours=5)
    EtlLockStore(cli_lake, stale_after=STALE_AFTER, clock=long_ago).acquire(
        "ehr", owner("run-dead")
    )
    result = CliRunner().invoke(
        main, ["etl", "clear-state", "--set-changelog-number", "7", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: breaking stale lock on source 'ehr': bronze load run run-dead" in (
        result.output
    )
    visits = EtlStateStore(cli_lake).get("ehr", "visits")
    assert visits is not None and visits.changelog_number == 7


def test_cli_head_state_shows_source_lag_and_lock(cli_lake: DeltaTableStore) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["etl", "head-state"])
    assert result.exit_code == 0, result.output
    assert "ehr: no changelog numbers stored: the next load is bulk" in result.output
    assert "ehr: lock free" in result.output

    EtlStateStore(cli_lake).set(
        "ehr", "patients", changelog_number=5, load_mode="bulk", rows_loaded=5
    )
    EtlLockStore(cli_lake, stale_after=STALE_AFTER).acquire("ehr", owner("run-live"))
    result = runner.invoke(main, ["etl", "head-state", "--source", "ehr"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line.split() for line in result.output.splitlines()[2:7]}
    import sqlite3

    with sqlite3.connect(Path(load_settings().data_dir) / "source" / "ehr.db") as db:
        head = db.execute("SELECT MAX(change_seq) FROM patients").fetchone()[0]
    assert lines["patients"][2:5] == ["5", str(head), str(head - 5)]
    assert lines["visits"][2] == "-"
    assert "ehr: locked by bronze load run run-live on host worker-1 (pid 4242)" in result.output


def test_cli_head_state_reports_an_unreachable_source_in_one_line(
    flowehr_env: Path,
) -> None:
    result = CliRunner().invoke(main, ["etl", "head-state"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "source lag unknown" in line]
    assert len(notes) == 1
    assert notes[0].startswith("ehr: source lag unknown: ")


# -- S3 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in its own process: delta-rs holds the GIL in some calls, so an
    in-process (threaded) server could not answer them."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="eu-west-2",
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        client.create_bucket(
            Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.integration
def test_etl_lock_on_s3_racing_loads_exactly_one_wins(s3_endpoint: str) -> None:
    delta = DeltaTableStore(
        storage=S3Storage(
            root="s3://lake/flowehr",
            endpoint_url=s3_endpoint,
            allow_http=True,
            access_key_id="test",
            secret_access_key="test",
        )
    )
    store = EtlLockStore(delta, stale_after=STALE_AFTER)
    barrier = threading.Barrier(4)
    winners: list[str] = []

    def contend(i: int) -> None:
        barrier.wait()
        try:
            store.acquire("ehr", owner(f"run-{i}"))
            winners.append(f"run-{i}")
        except EtlLockHeldError:
            pass

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    holder = store.holder("ehr")
    assert holder is not None and holder.run_id == winners[0]
    assert store.release(holder)
    assert store.holder("ehr") is None
