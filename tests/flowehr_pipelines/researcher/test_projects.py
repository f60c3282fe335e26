"""Research projects: each reader sees its own pseudonyms; two projects cannot be linked."""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from assets.features.tables import feature_key
from flowehr_pipelines.cli import main
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.researcher.project import ProjectKey
from flowehr_pipelines.researcher.store import FeatureStore
from resources.delta.store import DeltaTableStore
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.flowehr_pipelines.researcher.test_store import feature_rows, hours, news2_row

PROJECTS = "governance:\n  projects:\n    - id: proj-a\n    - id: proj-b\n"


@pytest.fixture
def projects(flowehr_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's config with two research projects in a local layer."""
    config_dir = flowehr_env.parent / "config"
    config_dir.mkdir()
    for name in ("config.yaml", "config.ci.yaml"):
        (config_dir / name).write_text((REPO_ROOT / name).read_text())
    (config_dir / "config.local.yaml").write_text(PROJECTS)
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(config_dir))


@pytest.fixture
def lake(projects: None) -> DeltaTableStore:
    delta = build_delta_store(load_settings())
    news2 = [news2_row(1, 1, 1), news2_row(2, 2, 4, "p2"), news2_row(3, 3, 2, "p3")]
    delta.overwrite(feature_key("news2").path, feature_rows("news2", news2))
    labs = [
        {"visit_id": 1, "person_key": "p1", "horizon_datetime": hours(1), "lab_crp_latest": 30.0},
        {"visit_id": 2, "person_key": "p2", "horizon_datetime": hours(2), "lab_crp_latest": 60.0},
    ]
    delta.overwrite(feature_key("lab_summaries").path, feature_rows("lab_summaries", labs))
    delta.overwrite(("reporting", "recipients"), pa.table({"nhsnumberhash": ["p1", "p2"]}))
    return delta


def keys_of(store: FeatureStore, path: str, column: str = "person_key") -> set[str]:
    return set(store.open_table(path, columns=[column])[column].to_pylist())


def test_two_projects_share_no_person_key_and_each_joins_its_own_tables(
    lake: DeltaTableStore,
) -> None:
    a = FeatureStore.for_project("proj-a")
    b = FeatureStore.for_project("proj-b")
    published = keys_of(FeatureStore.from_settings(), "gold/features/news2")
    a_news2, b_news2 = keys_of(a, "gold/features/news2"), keys_of(b, "gold/features/news2")
    assert len(a_news2) == len(b_news2) == 3
    assert a_news2.isdisjoint(b_news2)
    assert published.isdisjoint(a_news2 | b_news2)
    assert keys_of(a, "gold/features/lab_summaries") <= a_news2  # consistent across tables
    assert keys_of(a, "reporting/recipients", "nhsnumberhash") <= a_news2  # no global key

    extract_a = a.open_table("gold/features/news2").to_pandas()
    extract_b = b.open_table("gold/features/news2").to_pandas()
    assert pd.merge(extract_a, extract_b, on="person_key").empty  # cannot be linked

    spine = extract_a[["person_key"]].assign(event_time=hours(5))
    joined = a.training_set(spine, ["lab_summaries.lab_crp_latest"], entity_key="person_key")
    assert sorted(joined["lab_crp_latest"].dropna().tolist()) == [30.0, 60.0]


def test_the_reader_takes_the_project_from_its_environment(lake: DeltaTableStore) -> None:
    derived = ProjectKey.derive(load_settings(), "proj-a")
    env = {
        "FLOWEHR_DATA_DIR": str(load_settings().data_dir),
        "FLOWEHR_PROJECT_ID": "proj-a",
        "FLOWEHR_PROJECT_KEY": derived.key.hex(),
    }
    reader = FeatureStore.for_researcher(env)
    assert keys_of(reader, "gold/features/news2") == keys_of(
        FeatureStore.for_project("proj-a"), "gold/features/news2"
    )
    assert TEST_KEY not in repr(vars(reader)) and derived.key.hex() not in repr(derived)
    with pytest.raises(ValueError, match="set both FLOWEHR_PROJECT_ID and FLOWEHR_PROJECT_KEY"):
        ProjectKey.from_env({"FLOWEHR_PROJECT_ID": "proj-a"})
    with pytest.raises(ValueError, match="64 hex characters"):
        ProjectKey.from_env({"FLOWEHR_PROJECT_ID": "proj-a", "FLOWEHR_PROJECT_KEY": "abc"})


def test_cli_writes_a_project_key_file_readable_by_its_owner_only(
    lake: DeltaTableStore, tmp_path: Path
) -> None:
    out = tmp_path / "proj-a.key"
    result = CliRunner().invoke(
        main, ["governance", "project-key", "--project", "proj-a", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    key = out.read_text().strip()
    assert key == ProjectKey.derive(load_settings(), "proj-a").key.hex()
    assert key not in result.output and TEST_KEY not in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    again = CliRunner().invoke(
        main, ["governance", "project-key", "--project", "proj-a", "--out", str(out)]
    )
    assert again.exit_code == 2 and "exists: choose a new file" in again.output
    unknown = CliRunner().invoke(
        main, ["governance", "project-key", "--project", "nope", "--out", str(tmp_path / "x")]
    )
    assert unknown.exit_code == 2
    assert "no research project 'nope' in governance.projects (proj-a, proj-b)" in unknown.output
