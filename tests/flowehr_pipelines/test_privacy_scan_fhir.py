"""The privacy scan knows a FHIR-fed hospital's identifiers from its bronze Patients."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from assets.fhir.landing import land_export
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.privacy_scan_lake import scan_lake
from tests.flowehr_pipelines.test_fhir_config import FHIR_ONLY, config_dir
from transforms.fhir.codes import NHS_NUMBER_SYSTEM
from transforms.fhir.ndjson import parse_output

PATIENT = {
    "resourceType": "Patient",
    "id": "1",
    "identifier": [
        {"system": NHS_NUMBER_SYSTEM, "value": "943 476 5919"},
        {"system": "https://example.org/mrn", "value": "MRN0042"},
    ],
    "name": [{"family": "Featherstonehaugh", "given": ["Imogen"]}],
    "birthDate": "1950-01-02",
    "address": [{"postalCode": "NW1 2BU"}],
}


def test_a_published_nhs_number_from_a_fhir_source_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir(tmp_path, FHIR_ONLY, monkeypatch)
    settings = load_settings()
    delta = build_delta_store(settings)
    parsed = parse_output(
        (json.dumps(PATIENT) + "\n").encode(),
        source_file="Patient.ndjson",
        declared_type="Patient",
        accepted=frozenset({"Patient"}),
    )
    land_export(
        delta,
        source="hospital_fhir",
        types=["Patient"],
        parsed=parsed,
        since=None,
        transaction_time="2026-03-01T00:00:00Z",
    )
    delta.overwrite(
        ("gold", "features", "leaky"),
        pa.table({"visit_id": [1, 2], "note": ["9434765919", "Imogen Featherstonehaugh"]}),
    )
    known, result = scan_lake(settings)
    assert known.nhs_numbers == {"9434765919"} and "MRN0042" in known.mrns
    assert {"1950-01-02"} == known.dates_of_birth and "NW12BU" in known.postcodes
    described = {finding.describe() for finding in result.findings}
    # A name is found only by value: the scan learnt it from the FHIR Patient.
    assert "gold/features/leaky column 'note': name in 1 cell(s)" in described
    assert "gold/features/leaky column 'note': NHS number in 1 cell(s)" in described
