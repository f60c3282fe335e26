"""The real Dagster UI in a real browser: the graph shows, and a run launched there succeeds.

Starts ``dagster dev`` on a free 127.0.0.1 port against small demo data, drives
Debian's Chromium with Playwright, and keeps screenshots in ``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.ui

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUPS = ("ehr", "features", "reporting", "reports")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(base_url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{base_url}/graphql", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.load(response)
    return result


def _wait_until_loaded(base_url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
    query += "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("dagster dev exited before the UI came up")
        try:
            entries = graphql(base_url, query)["data"]["workspaceOrError"]["locationEntries"]
        except OSError:
            time.sleep(1)
            continue
        if entries and entries[0]["loadStatus"] == "LOADED":
            error = entries[0]["locationOrLoadError"]
            if error["__typename"] == "PythonError":
                raise RuntimeError(f"code location failed to load: {error['message']}")
            return
        time.sleep(1)
    raise TimeoutError("the Dagster UI did not load the code location in time")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    data_dir = tmp_path_factory.mktemp("ui") / "data"
    env = {
        **os.environ,
        "FLOWEHR_CONFIG_DIR": str(REPO_ROOT),
        "FLOWEHR_ENV": "ci",
        "FLOWEHR_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster_home"),
    }
    (data_dir / "dagster_home").mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [
            str(bin_dir / "flowehr"),
            "demo-data",
            "--patients",
            "60",
            "--days",
            "3",
            "--events-per-day",
            "100",
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=REPO_ROOT,
    )
    port = _free_port()
    log = (data_dir / "dagster_dev.log").open("wb")
    process = subprocess.Popen(
        [str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_loaded(base_url, process, time.monotonic() + 180)
        yield base_url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser_page(dagster_ui: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{dagster_ui}/asset-groups")
        skip = page.get_by_role("button", name="Skip")
        try:
            skip.click(timeout=10_000)
        except Exception:  # the community prompt does not always appear
            pass
        yield page
        browser.close()


def test_asset_graph_shows_every_domain_group_and_its_assets(
    dagster_ui: str, browser_page: Any
) -> None:
    page = browser_page
    page.goto(f"{dagster_ui}/asset-groups")
    page.get_by_text("reporting", exact=True).first.wait_for(timeout=60_000)
    for group in GROUPS:
        assert page.get_by_text(group, exact=True).count() > 0, group
    page.screenshot(path=str(ARTIFACTS / "asset_graph.png"), full_page=True)
    # The graph collapses into group boxes; each asset's catalog page names it.
    for path in (
        "bronze/transaction_history",
        "gold/features/news2",
        "reporting/request_item_status",
        "reports/completed_comms_report",
    ):
        page.goto(f"{dagster_ui}/assets/{path}")
        page.get_by_text(path.rsplit("/", 1)[-1], exact=True).first.wait_for(timeout=60_000)
    page.goto(f"{dagster_ui}/assets")
    page.get_by_text("transaction_history").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "asset_catalog.png"), full_page=True)


def test_materialising_from_the_ui_launches_a_run_that_succeeds(
    dagster_ui: str, browser_page: Any
) -> None:
    page = browser_page
    page.goto(f"{dagster_ui}/assets/bronze/ehr/patients")
    page.get_by_role("button", name="Materialize").first.click(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "materialize_clicked.png"))
    query = "{ runsOrError { ... on Runs { results { runId status } } } }"
    deadline = time.monotonic() + 240
    status, run_id = None, None
    while time.monotonic() < deadline:
        runs = graphql(dagster_ui, query)["data"]["runsOrError"]["results"]
        if runs:
            run_id, status = runs[0]["runId"], runs[0]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
        time.sleep(2)
    assert run_id is not None, "no run was launched from the UI"
    page.goto(f"{dagster_ui}/runs/{run_id}")
    page.get_by_text("Success").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "run_succeeded.png"))
    assert status == "SUCCESS"
