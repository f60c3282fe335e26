"""Every test runs against the repository's config files and a throwaway data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.delta.store import DeltaTableStore
from tests.lakes import local_store

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "test-pseudonymisation-key-0123456789"


@pytest.fixture(autouse=True)
def flowehr_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config at the repo, data at tmp_path, and use a fixed test key."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(REPO_ROOT))
    monkeypatch.setenv("FLOWEHR_ENV", "ci")
    monkeypatch.setenv("FLOWEHR_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("FLOWEHR_LAKE_ROOT", raising=False)
    monkeypatch.delenv("FLOWEHR_EHR_URL", raising=False)
    return data_dir


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A throwaway lake root."""
    return tmp_path / "lake"


@pytest.fixture
def store(lake: Path) -> DeltaTableStore:
    """The Delta table store of the throwaway lake."""
    return local_store(lake)
