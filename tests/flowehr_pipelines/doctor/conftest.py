"""Doctor fixtures: a small embedded source, a closed port, a prod-like config directory."""

from __future__ import annotations

import shutil
import socket
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from flowehr_pipelines.synthetic import write_ehr_source
from tests.conftest import REPO_ROOT


@pytest.fixture
def ehr_db(flowehr_env: Path) -> Path:
    """The embedded source the ``ci`` config reads, small."""
    path = flowehr_env / "source" / "ehr.db"
    path.parent.mkdir(parents=True)
    write_ehr_source(path, patients=20, days=2, start_date=date(2025, 3, 1), seed=1)
    return path


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prod_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped config files in a directory of their own, under ``FLOWEHR_ENV=prod``."""
    directory = tmp_path / "config"
    directory.mkdir()
    for name in ("config.yaml", "config.prod.yaml"):
        shutil.copy(REPO_ROOT / name, directory / name)
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(directory))
    monkeypatch.setenv("FLOWEHR_ENV", "prod")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # No shared credentials file or instance role is looked for on this machine.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return directory


def rename_column(db: Path, table: str, column: str) -> None:
    """Take a column away from the configured name (SQLite cannot drop a key column)."""
    with sqlite3.connect(db) as connection:
        connection.execute(f"ALTER TABLE {table} RENAME COLUMN {column} TO {column}_old")
