"""Integration fixtures: real servers started by the tests themselves."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.postgres import find_pg_bin, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    # Not under pytest's tmp tree: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="flowehr-pg-"))
    try:
        with postgres_server(base) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)
