"""The researcher's own reader: lake root and read credentials only, published zones only."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from flowehr_pipelines.cli import main
from flowehr_pipelines.config import ReaderSettings
from flowehr_pipelines.deployment import build_reader_store
from flowehr_pipelines.researcher.store import FeatureStore
from tests.lakes import local_store

REFUSED = [
    "landing/transaction_history",
    "bronze/ehr/patients",
    "silver/ehr/patients",
    "internal/etl_state",
    "gold/features/../../bronze/ehr/patients",
    "reporting/../bronze/ehr/patients",
    "/bronze/ehr/patients",
    "gold/features/./../../silver/ehr/patients",
    "gold/features//x",
    "gold/features",
    "gold/x",
]


@pytest.fixture
def prod_researcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A prod shell of a researcher: no key, no config tokens, no source DB; a lake root."""
    lake = tmp_path / "lake"
    delta = local_store(lake)
    delta.overwrite(("reporting", "request_item_status"), pa.table({"requestitemid": ["a", "b"]}))
    delta.overwrite(("bronze", "ehr", "patients"), pa.table({"nhs_number": ["9434765919"]}))
    delta.overwrite(("silver", "ehr", "patients"), pa.table({"person_key": ["k"]}))
    delta.overwrite(("internal", "etl_state"), pa.table({"n": [1]}))
    monkeypatch.setenv("FLOWEHR_ENV", "prod")
    monkeypatch.delenv("FLOWEHR_PSEUDONYMISATION_KEY")
    monkeypatch.delenv("FLOWEHR_DATA_DIR")
    for token in ("FLOWEHR_LAKE_BUCKET", "DATABRICKS_HOST", "EHR_DB_USER", "EHR_DB_HOST"):
        monkeypatch.delenv(token, raising=False)
    monkeypatch.setenv("FLOWEHR_LAKE_ROOT", str(lake))
    return lake


def test_researcher_reader_needs_no_key_tokens_or_source(prod_researcher: Path) -> None:
    # The engineer's commands cannot even load their settings in this shell ...
    engineer = CliRunner().invoke(main, ["tables"])
    assert engineer.exit_code == 2 and "needs environment variable" in engineer.stderr
    # ... while the researcher's read published tables.
    listed = CliRunner().invoke(main, ["features", "list"])
    assert listed.exit_code == 0, listed.output
    assert "patient_demographics" in listed.stdout
    shown = CliRunner().invoke(main, ["features", "head", "reporting/request_item_status"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.split() == ["requestitemid", "-------------", "a", "b"]


@pytest.mark.parametrize("path", REFUSED)
def test_researcher_reader_refuses_unpublished_zones_in_one_line(
    prod_researcher: Path, path: str
) -> None:
    result = CliRunner().invoke(main, ["features", "head", path])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a published table" in lines[0], result.output
    assert "9434765919" not in result.output


@pytest.mark.parametrize("path", REFUSED)
def test_researcher_api_refuses_unpublished_zones(prod_researcher: Path, path: str) -> None:
    store = FeatureStore.for_researcher()
    with pytest.raises(PermissionError, match="researchers may read gold/features and reporting"):
        store.open_table(path)


def test_reader_settings_come_from_the_environment_only() -> None:
    s3 = ReaderSettings.from_env(
        {
            "FLOWEHR_LAKE_ROOT": "s3://bucket/flowehr/",
            "AWS_REGION": "eu-west-1",
            "FLOWEHR_S3_ENDPOINT": "http://127.0.0.1:9000",
            "FLOWEHR_S3_ALLOW_HTTP": "true",
        }
    )
    assert s3 == ReaderSettings("s3://bucket/flowehr", "eu-west-1", "http://127.0.0.1:9000", True)
    options = build_reader_store(s3).storage.options()
    assert "AWS_ACCESS_KEY_ID" not in options, "credentials come from the AWS chain"
    local = ReaderSettings.from_env({"FLOWEHR_DATA_DIR": "/srv/flowehr"})
    assert local.lake_root == "/srv/flowehr/lake"
