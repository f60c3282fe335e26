"""A FHIR-only hospital is a configuration: FHIR sources in, the clinical tables out."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from flowehr_pipelines.config import load_settings
from flowehr_pipelines.definitions import build_definitions
from resources.fhir_bulk import FhirBulkDataResource
from resources.pds import PdsResource
from resources.settings import ConfigError
from tests.conftest import REPO_ROOT

FHIR_ONLY = """
data_source_connections: []
fhir_sources:
  - name: hospital_fhir
    base_url: https://fhir.example.nhs.uk/R4
    export_level: group
    group_id: inpatients
    auth: client_assertion
    token_url: https://fhir.example.nhs.uk/oauth2/token
    client_id: flowehr
    private_key_env: HOSPITAL_FHIR_PRIVATE_KEY
    key_id: key-1
    feeds_clinical_source: true
"""


def config_dir(tmp_path: Path, local: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "config"
    target.mkdir()
    for name in ("config.yaml", "config.ci.yaml"):
        shutil.copy(REPO_ROOT / name, target / name)
    (target / "config.local.yaml").write_text(local)
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(target))
    return target


def test_a_fhir_only_configuration_builds_the_clinical_tables_from_fhir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir(tmp_path, FHIR_ONLY, monkeypatch)
    settings = load_settings()
    assert settings.data_source_connections == []
    assert "HOSPITAL_FHIR_PRIVATE_KEY" in settings.secret_names()
    defs = build_definitions(settings)
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {
        "bronze/hospital_fhir/fhir_patient",
        "bronze/ehr/patients",
        "silver/ehr/patients",
    } <= keys
    assert "gold/features/vital_signs" in keys
    graph = defs.resolve_asset_graph()
    mapping = graph.get(dg.AssetKey(["bronze", "ehr", "observations"]))
    assert dg.AssetKey(["bronze", "hospital_fhir", "fhir_observation"]) in mapping.parent_keys
    client = (defs.resources or {})["fhir_hospital_fhir"]
    assert isinstance(client, FhirBulkDataResource)
    assert client.kickoff_url() == "https://fhir.example.nhs.uk/R4/Group/inpatients/$export"


@pytest.mark.parametrize(
    ("local", "message"),
    [
        ("data_source_connections: []\n", "configure data_source_connections or fhir_sources"),
        (
            "fhir_sources:\n  - {name: f, base_url: 'http://x', feeds_clinical_source: true}\n",
            "a SQL source is named 'ehr' too",
        ),
    ],
)
def test_clinical_source_conflicts_are_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: str, message: str
) -> None:
    config_dir(tmp_path, local, monkeypatch)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_pds_is_off_unless_enabled_and_then_feeds_silver_patients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    assert not settings.pds.enabled
    keys = build_definitions(settings).resolve_all_asset_keys()
    assert dg.AssetKey(["bronze", "ehr", "pds_verification"]) not in keys
    config_dir(
        tmp_path, "pds: {enabled: true, environment: integration, key_id: k1}\n", monkeypatch
    )
    settings = load_settings()
    assert {"PDS_API_KEY", "PDS_PRIVATE_KEY"} <= set(settings.secret_names())
    defs = build_definitions(settings)
    patients = defs.resolve_asset_graph().get(dg.AssetKey(["silver", "ehr", "patients"]))
    assert dg.AssetKey(["bronze", "ehr", "pds_verification"]) in patients.parent_keys
    client = (defs.resources or {})["pds"]
    assert isinstance(client, PdsResource)
    assert client.resolved_token_url == "https://int.api.service.nhs.uk/oauth2/token"
