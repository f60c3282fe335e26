"""Layered config: deep merge, ${NAME} substitution, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowehr_pipelines.config import (
    PSEUDONYMISATION_KEY_ENV,
    load_settings,
    local_key_file,
)
from flowehr_pipelines.config_loading import deep_merge, substitute_tokens
from resources.settings import ConfigError

BASE = """
data_source_connections:
  - name: ehr
    tables:
      - {name: patients, primary_key: [patient_id]}
spark:
  master: local[2]
  conf:
    spark.sql.shuffle.partitions: "4"
    spark.driver.memory: 4g
reporting:
  projection_window_days: 7
  timezone: Europe/London
"""


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    _write(directory, "config.yaml", BASE)
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(directory))
    monkeypatch.setenv("FLOWEHR_ENV", "local")
    return directory


def test_deep_merge_keeps_nested_keys_the_overlay_does_not_set() -> None:
    sources: dict[str, Path] = {}
    merged = deep_merge(
        {"spark": {"conf": {"a": "1", "b": "2"}, "master": "local[2]"}},
        {"spark": {"conf": {"b": "3"}}},
        sources=sources,
        overlay_path=Path("overlay.yaml"),
    )
    assert merged == {"spark": {"conf": {"a": "1", "b": "3"}, "master": "local[2]"}}
    assert sources["spark.conf.b"] == Path("overlay.yaml")


def test_deep_merge_replaces_lists_whole() -> None:
    merged = deep_merge(
        {"clients": ["a", "b"]}, {"clients": ["c"]}, sources={}, overlay_path=Path("x")
    )
    assert merged == {"clients": ["c"]}


def test_layers_merge_base_env_and_local_in_order(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(config_dir, "config.ci.yaml", "spark:\n  conf:\n    spark.driver.memory: 2g\n")
    _write(config_dir, "config.local.yaml", "reporting:\n  projection_window_days: 3\n")
    monkeypatch.setenv("FLOWEHR_ENV", "ci")
    settings = load_settings()
    assert settings.spark.conf == {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "2g"}
    assert settings.spark.master == "local[2]"
    assert settings.reporting.projection_window_days == 3
    assert settings.reporting.timezone == "Europe/London"


def test_tokens_resolve_from_environment_with_defaults() -> None:
    env = {"HOST": "db.internal"}
    resolved = substitute_tokens(
        {"url": "postgresql://u@${HOST}:${PORT:-5432}/ehr", "n": 3, "items": ["${HOST}"]},
        env,
        sources={},
    )
    assert resolved == {
        "url": "postgresql://u@db.internal:5432/ehr",
        "n": 3,
        "items": ["db.internal"],
    }


def test_unresolved_token_names_the_key_the_file_and_the_variable(config_dir: Path) -> None:
    _write(config_dir, "config.local.yaml", "lake:\n  root: s3://${MISSING_BUCKET}/lake\n")
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "config.local.yaml" in message
    assert "lake.root" in message
    assert "MISSING_BUCKET" in message


def test_schema_error_names_the_file_and_the_key(config_dir: Path) -> None:
    _write(config_dir, "config.local.yaml", "reporting:\n  projection_window_days: -1\n")
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "config.local.yaml" in message
    assert "reporting.projection_window_days" in message
    assert "greater than 0" in message


def test_unknown_key_is_an_error_not_ignored(config_dir: Path) -> None:
    _write(config_dir, "config.local.yaml", "reporting:\n  projection_window_dayz: 3\n")
    with pytest.raises(ConfigError, match="projection_window_dayz"):
        load_settings()


def test_list_item_error_names_the_index(config_dir: Path) -> None:
    _write(
        config_dir,
        "config.local.yaml",
        "data_source_connections:\n"
        "  - name: Bad-Name\n"
        "    tables: [{name: t, primary_key: [id]}]\n",
    )
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "data_source_connections[0].name" in str(error.value)
    assert "snake_case" in str(error.value)


def test_malformed_yaml_names_the_file_and_line(config_dir: Path) -> None:
    _write(config_dir, "config.local.yaml", "reporting:\n  clients: [a, b\n")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "config.local.yaml" in str(error.value)
    assert "line" in str(error.value)


def test_missing_base_config_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"config\.yaml: not found"):
        load_settings()


def test_data_dir_defaults_the_lake_and_source_paths(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWEHR_DATA_DIR", str(tmp_path / "d"))
    settings = load_settings()
    assert settings.lake_root == str(tmp_path / "d" / "lake")
    assert settings.landing_root == str(tmp_path / "d" / "lake" / "landing")
    assert (
        settings.source_url(settings.connection("ehr"))
        == f"sqlite:///{tmp_path / 'd' / 'source' / 'ehr.db'}"
    )
    assert settings.dagster_home == tmp_path / "d" / "dagster_home"


def test_missing_key_outside_embedded_envs_is_a_startup_error(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(config_dir, "config.prod.yaml", "compute: local\n")
    monkeypatch.setenv("FLOWEHR_ENV", "prod")
    monkeypatch.delenv(PSEUDONYMISATION_KEY_ENV)
    with pytest.raises(ConfigError, match=PSEUDONYMISATION_KEY_ENV):
        load_settings()


def test_local_key_is_generated_once_and_kept(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PSEUDONYMISATION_KEY_ENV)
    env: dict[str, str] = {
        "FLOWEHR_CONFIG_DIR": str(config_dir),
        "FLOWEHR_DATA_DIR": str(config_dir.parent / "data"),
    }
    first = load_settings(env)
    key = first.secret(PSEUDONYMISATION_KEY_ENV)
    key_file = local_key_file(first)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first.pseudonymisation_key_file == key_file
    assert PSEUDONYMISATION_KEY_ENV not in env, "the environment is never written"
    again = load_settings(env)
    assert again.secret(PSEUDONYMISATION_KEY_ENV) == key
    assert key is not None and len(key) == 64


def test_repository_config_loads_for_every_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for env_name in ("local", "ci"):
        monkeypatch.setenv("FLOWEHR_ENV", env_name)
        assert load_settings().env == env_name
    monkeypatch.setenv("FLOWEHR_ENV", "prod")
    monkeypatch.setenv("FLOWEHR_LAKE_BUCKET", "bucket")
    monkeypatch.setenv("DATABRICKS_HOST", "https://example.cloud.databricks.com")
    monkeypatch.setenv("EHR_DB_USER", "reader")
    monkeypatch.setenv("EHR_DB_HOST", "ehr-replica")
    settings = load_settings()
    assert settings.lake_root == "s3://bucket/flowehr"
    assert settings.compute == "databricks"
    assert settings.connection("ehr").password_env == "EHR_DB_PASSWORD"
