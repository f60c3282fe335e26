"""The production topology, started for real: code server, webserver, daemon, PostgreSQL.

- ``dagster code-server start`` serves the code location over gRPC on 127.0.0.1;
- ``dagster-webserver`` and ``dagster-daemon run`` load a workspace that points at it
  (``grpc_server``), with the shipped ``deploy/dagster.yaml`` instance on a throwaway
  PostgreSQL cluster (password authentication);
- the daemon ticks the heartbeat schedule and the landing sensor, and the runs they
  launch (queued, dequeued, launched through the code server) succeed;
- the code server is restarted and the webserver, left running, picks the new one up.

Every process is stopped by its id at the end, and the test checks none is left. It
takes a few minutes on two cores, so it is marked ``topology`` and `.ci/run` runs it
after the suite (`make test-topology`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import sqlalchemy as sa

from flowehr_pipelines.automation.heartbeat import HEARTBEAT_SCHEDULE
from flowehr_pipelines.synthetic import write_cdc_landing
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.integration.postgres import find_pg_bin, postgres_server
from tests.integration.processes import Server, start, stop

pytestmark = [pytest.mark.integration, pytest.mark.topology]

LOCATION = "flowehr_pipelines"
LANDING_SENSOR = "landing_files_sensor"
PG_USER = "dagster"
PG_PASSWORD = "topology-test-secret"  # a throwaway cluster's, passed by environment only
BIN = Path(sys.executable).parent
T = TypeVar("T")

LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus updatedTimestamp
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""

OVERLAY = """
# The documented per-host overlay: a heartbeat every minute and a quick landing sensor.
automation:
  heartbeat_cron: "* * * * *"
  heartbeat_running: true
reporting:
  landing_sensor_interval_seconds: 5
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, probe: Callable[[], T | None], *, timeout: float, servers: list[Server]) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server in servers:
            server.note_descendants()
            assert server.alive(), f"{server.name} exited:\n{server.tail()}"
        found = probe()
        if found is not None:
            return found
        time.sleep(2)
    logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in servers)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _location(webserver_port: int) -> dict[str, Any] | None:
    """The code location's entry as the webserver reports it, or None while unreachable."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{webserver_port}/graphql",
        data=json.dumps({"query": LOCATION_QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
    except OSError:
        return None
    entries = body["data"]["workspaceOrError"].get("locationEntries") or []
    return next((e for e in entries if e["name"] == LOCATION), None)


def _loaded_after(port: int, after: float) -> Callable[[], dict[str, Any] | None]:
    """Loaded without error, more recently than ``after``; an error while the code server
    is still starting (UNAVAILABLE) is retried: the webserver reconnects by itself."""

    def probe() -> dict[str, Any] | None:
        entry = _location(port)
        if not entry or entry["loadStatus"] != "LOADED" or entry["updatedTimestamp"] <= after:
            return None
        if entry["locationOrLoadError"]["__typename"] == "PythonError":
            return None
        return entry

    return probe


def _succeeded(instance: dg.DagsterInstance, tag: str, name: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={tag: name}))
        failed = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
        assert not failed, f"{name} launched a failed run {failed[0].dagster_run.run_id}"
        done = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
        return done[0].dagster_run.run_id if done else None

    return probe


@pytest.fixture
def base() -> Iterator[Path]:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    # Not under pytest's tmp tree: that is private to root, and the server runs as postgres.
    path = Path(tempfile.mkdtemp(prefix="flowehr-topology-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _environment(base: Path, pg_url: str) -> dict[str, str]:
    url = sa.make_url(pg_url)
    config_dir = base / "config"
    config_dir.mkdir()
    for name in ("config.yaml", "config.ci.yaml"):
        shutil.copy(REPO_ROOT / name, config_dir / name)
    (config_dir / "config.local.yaml").write_text(OVERLAY, encoding="utf-8")
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "FLOWEHR_ENV": "ci",
        "FLOWEHR_CONFIG_DIR": str(config_dir),
        "FLOWEHR_DATA_DIR": str(base / "data"),
        "FLOWEHR_PSEUDONYMISATION_KEY": TEST_KEY,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USERNAME": PG_USER,
        "DAGSTER_PG_PASSWORD": PG_PASSWORD,
    }


def _code_server(port: int, env: dict[str, str], logs: Path, name: str) -> Server:
    argv = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-m", "flowehr_pipelines.definitions", "--location-name", LOCATION]
    return start(name, argv, env=env, cwd=REPO_ROOT, logs=logs)


def test_code_server_webserver_and_daemon_run_scheduled_and_sensor_runs(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers: list[Server] = []
    leftovers: list[int] = []
    with postgres_server(base / "pg", user=PG_USER, password=PG_PASSWORD) as pg_url:
        engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text("CREATE DATABASE dagster"))
        engine.dispose()
        env = _environment(base, pg_url)
        for key in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB"):
            monkeypatch.setenv(key, env[key])
        monkeypatch.setenv("DAGSTER_PG_USERNAME", PG_USER)
        monkeypatch.setenv("DAGSTER_PG_PASSWORD", PG_PASSWORD)
        write_cdc_landing(
            base / "data" / "lake" / "landing",
            days=1,
            events_per_day=200,
            start_date=date.today() - timedelta(days=1),
            seed=5,
        )
        grpc_port, web_port = _free_port(), _free_port()
        workspace = base / "workspace.yaml"
        workspace.write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {grpc_port}\n      location_name: {LOCATION}\n",
            encoding="utf-8",
        )
        logs = base / "logs"
        try:
            servers.append(_code_server(grpc_port, env, logs, "code-server"))
            webserver = start(
                "webserver",
                [
                    str(BIN / "dagster-webserver"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(web_port),
                    "-w",
                    str(workspace),
                ],
                env=env,
                cwd=base,
                logs=logs,
            )
            servers.append(webserver)
            first = _wait(
                "the webserver to load the code location",
                _loaded_after(web_port, 0.0),
                timeout=240,
                servers=servers,
            )
            servers.append(
                start(
                    "daemon",
                    [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                    env=env,
                    cwd=base,
                    logs=logs,
                )
            )
            subprocess.run(
                [str(BIN / "dagster"), "sensor", "start", LANDING_SENSOR, "-w", str(workspace)],
                env=env,
                cwd=base,
                check=True,
                capture_output=True,
                timeout=180,
            )
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                _wait(
                    "a successful run from the landing sensor",
                    _succeeded(instance, "dagster/sensor_name", LANDING_SENSOR),
                    timeout=420,
                    servers=servers,
                )
                _wait(
                    "a successful run from the heartbeat schedule",
                    _succeeded(instance, "dagster/schedule_name", HEARTBEAT_SCHEDULE),
                    timeout=240,
                    servers=servers,
                )

            # Restart the code server on the same port; the webserver keeps running.
            leftovers += stop(servers.pop(0))
            servers.insert(0, _code_server(grpc_port, env, logs, "code-server-2"))
            second = _wait(
                "the webserver to pick up the restarted code server",
                _loaded_after(web_port, first["updatedTimestamp"]),
                timeout=240,
                servers=servers,
            )
            assert second["updatedTimestamp"] > first["updatedTimestamp"]
            assert webserver.alive()
        finally:
            for server in reversed(servers):
                leftovers += stop(server)
    assert leftovers == [], f"processes left running: {leftovers}"
