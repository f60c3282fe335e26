"""FHIR resources onto the clinical source's rows, and FHIR ids onto row ids."""

from __future__ import annotations

import pytest

from transforms.fhir.codes import NHS_NUMBER_SYSTEM, OBSERVATION_CATEGORY
from transforms.fhir.ids import instant_micros, micros_instant, reference_id, row_id
from transforms.fhir.source_rows import SOURCE_SCHEMAS, source_tables


def test_row_ids_keep_digits_and_hash_anything_else() -> None:
    assert row_id("42") == 42 and row_id("lab-42") == 42
    uuid_id = row_id("0b7e6d1c-8f3a-4c1e-9d2b-5a6f7e8d9c0b")
    assert uuid_id is not None and uuid_id >= 2**62
    assert uuid_id == row_id("0b7e6d1c-8f3a-4c1e-9d2b-5a6f7e8d9c0b")
    assert row_id(None) is None
    assert reference_id({"reference": "https://x/fhir/Patient/7"}, "Patient") == "7"
    assert reference_id({"reference": "Group/7"}, "Patient") is None


def test_instants_round_trip_through_microseconds() -> None:
    micros = instant_micros("2026-03-01T10:00:00.123456+01:00")
    assert micros_instant(micros) == "2026-03-01T09:00:00.123456Z"
    with pytest.raises(ValueError):
        instant_micros("2026-03-01T10:00:00")


def test_each_resource_maps_to_its_source_row() -> None:
    stamp = {"lastUpdated": "2026-03-01T10:00:00Z"}
    patient = {
        "resourceType": "Patient",
        "id": "1",
        "meta": stamp,
        "identifier": [
            {"system": "https://example.org/mrn", "value": "MRN1"},
            {"system": NHS_NUMBER_SYSTEM, "value": "943 476 5919"},
        ],
        "gender": "other",
        "birthDate": "1950-01-02",
        "address": [
            {"use": "work", "postalCode": "E1 1AA"},
            {"use": "home", "postalCode": "NW1 2BU"},
        ],
    }
    vitals = {
        "resourceType": "Observation",
        "id": "vs-5",
        "meta": stamp,
        "encounter": {"reference": "Encounter/3"},
        "effectiveDateTime": "2026-03-01T09:00:00Z",
        "code": {"coding": [{"code": "8867-4"}]},
        "valueQuantity": {"value": 88},
        "component": [{"code": {"coding": [{"code": "9279-1"}]}, "valueQuantity": {"value": 21}}],
    }
    lab = {
        "resourceType": "Observation",
        "id": "lab-5",
        "meta": stamp,
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"code": "CRP"}]},
        "encounter": {"reference": "Encounter/3"},
        "valueQuantity": {"value": 12.5, "unit": "mg/L"},
        "referenceRange": [{"high": {"value": 5}}],
    }
    tables = source_tables({"Patient": [patient], "Observation": [vitals, lab]})
    assert {name: t.schema for name, t in tables.items()} == SOURCE_SCHEMAS
    (p,) = tables["patients"].to_pylist()
    assert (p["patient_id"], p["nhs_number"], p["sex"], p["postcode"]) == (
        1,
        "943 476 5919",
        "U",
        "NW1 2BU",
    )
    assert p["change_seq"] == instant_micros("2026-03-01T10:00:00Z")
    (o,) = tables["observations"].to_pylist()
    assert (
        o["observation_id"],
        o["visit_id"],
        o["heart_rate"],
        o["respiratory_rate"],
        o["spo2"],
    ) == (5, 3, 88.0, 21.0, None)
    (lab_row,) = tables["lab_results"].to_pylist()
    assert (
        lab_row["test_code"],
        lab_row["value"],
        lab_row["reference_low"],
        lab_row["reference_high"],
    ) == ("CRP", 12.5, None, 5.0)
    assert tables["visits"].num_rows == tables["diagnoses"].num_rows == 0
