"""One load of a broken configuration names every problem, not the first one only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flowehr_pipelines.config import PSEUDONYMISATION_KEY_ENV, load_settings
from flowehr_pipelines.config_loading import ConfigProblems
from tests.conftest import REPO_ROOT

PROD_VARIABLES = ("FLOWEHR_LAKE_BUCKET", "DATABRICKS_HOST", "EHR_DB_USER", "EHR_DB_HOST")


@pytest.fixture
def prod_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped prod sample plus a host overlay with two bad keys."""
    directory = tmp_path / "config"
    directory.mkdir()
    for name in ("config.yaml", "config.prod.yaml"):
        shutil.copy(REPO_ROOT / name, directory / name)
    (directory / "config.local.yaml").write_text(
        "reporting:\n  projection_window_days: -1\n  projection_window_dayz: 3\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(directory))
    monkeypatch.setenv("FLOWEHR_ENV", "prod")
    monkeypatch.delenv(PSEUDONYMISATION_KEY_ENV)
    for name in PROD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return directory


def test_every_missing_variable_bad_key_and_secret_is_named_in_one_load(
    prod_config: Path,
) -> None:
    with pytest.raises(ConfigProblems) as error:
        load_settings()
    problems = error.value.problems
    joined = "\n".join(problems)
    for name in ("FLOWEHR_LAKE_BUCKET", "DATABRICKS_HOST"):
        assert f"needs environment variable {name}," in joined
    assert "needs environment variables EHR_DB_USER, EHR_DB_HOST, which" in joined
    assert "reporting.projection_window_days" in joined
    assert "projection_window_dayz" in joined
    assert PSEUDONYMISATION_KEY_ENV in joined
    # One line per key: the source url's two missing variables share a line.
    assert len(problems) == 3 + 3
    assert str(error.value).startswith(f"{len(problems)} configuration problems: ")


def test_an_empty_substitute_for_a_missing_variable_is_not_reported_twice(
    prod_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (prod_config / "config.local.yaml").write_text("ehr:\n  lock_heartbeat_seconds: ${BEAT}\n")
    for name in PROD_VARIABLES:
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv(PSEUDONYMISATION_KEY_ENV, "k" * 32)
    with pytest.raises(ConfigProblems) as error:
        load_settings()
    assert len(error.value.problems) == 1
    assert "ehr.lock_heartbeat_seconds" in error.value.problems[0]
    assert "BEAT" in error.value.problems[0]
