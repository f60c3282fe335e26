"""FHIR resources onto the clinical source's tables, so silver cleans them unchanged.

The silver cleaning rules (NHS number checks, impossible readings, orphans) live in
``transforms.ehr_silver`` and apply to every source: mapping FHIR onto the rows a SQL
source delivers, column for column, is what makes a FHIR-only hospital's silver and
feature tables the same as a SQL-fed one's. Mapping is deliberately literal (no
cleaning here): a value FHIR carries in an unexpected place becomes null and the
silver rules quarantine the row with their usual reason.

``change_seq`` becomes ``meta.lastUpdated`` in epoch microseconds: a FHIR server has no
global change number, and the feature store only needs the order of changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa

from transforms.fhir.codes import (
    CONSCIOUSNESS,
    ETHNIC_CATEGORY_EXTENSION,
    GENDER_TO_SEX,
    ICD10,
    NHS_NUMBER_SYSTEM,
    NUMERIC_VITAL_SIGNS,
    OBSERVATION_CATEGORY,
    SUPPLEMENTAL_OXYGEN,
)
from transforms.fhir.ids import instant_micros, reference_id, row_id

Resource = dict[str, Any]

_TEXT = pa.string()
_INT = pa.int64()
_FLOAT = pa.float64()
_CDC = [("updated_at", _TEXT), ("change_seq", _INT), ("is_deleted", _INT)]

SOURCE_SCHEMAS: dict[str, pa.Schema] = {
    "patients": pa.schema(
        [
            ("patient_id", _INT),
            ("nhs_number", _TEXT),
            ("date_of_birth", _TEXT),
            ("sex", _TEXT),
            ("postcode", _TEXT),
            ("ethnicity", _TEXT),
            *_CDC,
        ]
    ),
    "visits": pa.schema(
        [
            ("visit_id", _INT),
            ("patient_id", _INT),
            ("admission_datetime", _TEXT),
            ("discharge_datetime", _TEXT),
            ("admission_type", _TEXT),
            ("ward", _TEXT),
            ("discharge_disposition", _TEXT),
            *_CDC,
        ]
    ),
    "observations": pa.schema(
        [
            ("observation_id", _INT),
            ("visit_id", _INT),
            ("observed_at", _TEXT),
            ("charted_at", _TEXT),
            ("respiratory_rate", _FLOAT),
            ("spo2", _FLOAT),
            ("on_supplemental_oxygen", _INT),
            ("temperature", _FLOAT),
            ("systolic_bp", _FLOAT),
            ("heart_rate", _FLOAT),
            ("consciousness", _TEXT),
            *_CDC,
        ]
    ),
    "lab_results": pa.schema(
        [
            ("lab_result_id", _INT),
            ("visit_id", _INT),
            ("collected_at", _TEXT),
            ("resulted_at", _TEXT),
            ("test_code", _TEXT),
            ("value", _FLOAT),
            ("unit", _TEXT),
            ("reference_low", _FLOAT),
            ("reference_high", _FLOAT),
            *_CDC,
        ]
    ),
    "diagnoses": pa.schema(
        [
            ("diagnosis_id", _INT),
            ("visit_id", _INT),
            ("icd10_code", _TEXT),
            ("description", _TEXT),
            ("recorded_at", _TEXT),
            *_CDC,
        ]
    ),
}
"""The clinical source's columns that silver reads (names, MRNs and notes stay in FHIR
bronze: silver would drop them anyway)."""


def _first(items: Any, test: Callable[[Any], bool] = lambda _: True) -> Any:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and test(item):
            return item
    return None


def _get(resource: Any, *path: str) -> Any:
    for step in path:
        resource = resource.get(step) if isinstance(resource, dict) else None
    return resource


def _text(concept: Any) -> str | None:
    """A CodeableConcept's text, else its first coding's display, else its code."""
    if not isinstance(concept, dict):
        return None
    coding = _first(concept.get("coding")) or {}
    return concept.get("text") or coding.get("display") or coding.get("code")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cdc(resource: Resource) -> dict[str, Any]:
    updated = _get(resource, "meta", "lastUpdated")
    try:
        change = instant_micros(updated) if isinstance(updated, str) else None
    except ValueError:
        change = None
    return {"updated_at": updated, "change_seq": change, "is_deleted": 0}


def patient_row(patient: Resource) -> dict[str, Any]:
    """A ``patients`` row: NHS number from the identifier with the NHS number system."""
    nhs = _first(patient.get("identifier"), lambda i: i.get("system") == NHS_NUMBER_SYSTEM)
    home = _first(patient.get("address"), lambda a: a.get("use") == "home")
    address = home or _first(patient.get("address")) or {}
    ethnic = _first(patient.get("extension"), lambda e: e.get("url") == ETHNIC_CATEGORY_EXTENSION)
    gender = patient.get("gender")
    return {
        "patient_id": row_id(patient.get("id")),
        "nhs_number": (nhs or {}).get("value"),
        "date_of_birth": patient.get("birthDate"),
        "sex": GENDER_TO_SEX.get(gender) if isinstance(gender, str) else None,
        "postcode": address.get("postalCode"),
        "ethnicity": _text((ethnic or {}).get("valueCodeableConcept")),
        **_cdc(patient),
    }


def visit_row(encounter: Resource) -> dict[str, Any]:
    """A ``visits`` row: the period, type, ward (first location) and discharge disposition."""
    return {
        "visit_id": row_id(encounter.get("id")),
        "patient_id": row_id(reference_id(encounter.get("subject"), "Patient")),
        "admission_datetime": _get(encounter, "period", "start"),
        "discharge_datetime": _get(encounter, "period", "end"),
        "admission_type": _text(_first(encounter.get("type"))),
        "ward": _get(_first(encounter.get("location")), "location", "display"),
        "discharge_disposition": _text(_get(encounter, "hospitalization", "dischargeDisposition")),
        **_cdc(encounter),
    }


def _codes(concept: Any) -> list[str]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return [str(c["code"]) for c in codings or [] if isinstance(c, dict) and c.get("code")]


def is_laboratory(observation: Resource) -> bool:
    """Whether an Observation is a laboratory result (category ``laboratory``)."""
    return any(
        coding.get("system") == OBSERVATION_CATEGORY and coding.get("code") == "laboratory"
        for category in observation.get("category") or []
        if isinstance(category, dict)
        for coding in category.get("coding") or []
        if isinstance(coding, dict)
    )


def _readings(observation: Resource) -> Iterable[tuple[list[str], Resource]]:
    """The observation itself and each component, with their codes."""
    yield _codes(observation.get("code")), observation
    for component in observation.get("component") or []:
        if isinstance(component, dict):
            yield _codes(component.get("code")), component


def observation_row(observation: Resource) -> dict[str, Any]:
    """An ``observations`` row: each reading's LOINC code names its vital-sign column."""
    row: dict[str, Any] = {
        "observation_id": row_id(observation.get("id")),
        "visit_id": row_id(reference_id(observation.get("encounter"), "Encounter")),
        "observed_at": observation.get("effectiveDateTime"),
        "charted_at": observation.get("issued"),
        "respiratory_rate": None,
        "spo2": None,
        "on_supplemental_oxygen": None,
        "temperature": None,
        "systolic_bp": None,
        "heart_rate": None,
        "consciousness": None,
    }
    for codes, reading in _readings(observation):
        for code in codes:
            if code in NUMERIC_VITAL_SIGNS:
                row[NUMERIC_VITAL_SIGNS[code]] = _number(_get(reading, "valueQuantity", "value"))
            elif code == CONSCIOUSNESS:
                row["consciousness"] = _text(reading.get("valueCodeableConcept"))
            elif code == SUPPLEMENTAL_OXYGEN and isinstance(reading.get("valueBoolean"), bool):
                row["on_supplemental_oxygen"] = int(reading["valueBoolean"])
    return {**row, **_cdc(observation)}


def lab_row(observation: Resource) -> dict[str, Any]:
    """A ``lab_results`` row: the test code, quantity and first reference range."""
    reference = _first(observation.get("referenceRange")) or {}
    codes = _codes(observation.get("code"))
    return {
        "lab_result_id": row_id(observation.get("id")),
        "visit_id": row_id(reference_id(observation.get("encounter"), "Encounter")),
        "collected_at": observation.get("effectiveDateTime"),
        "resulted_at": observation.get("issued"),
        "test_code": codes[0] if codes else None,
        "value": _number(_get(observation, "valueQuantity", "value")),
        "unit": _get(observation, "valueQuantity", "unit"),
        "reference_low": _number(_get(reference, "low", "value")),
        "reference_high": _number(_get(reference, "high", "value")),
        **_cdc(observation),
    }


def diagnosis_row(condition: Resource) -> dict[str, Any]:
    """A ``diagnoses`` row: the ICD-10 coding, its display, and when it was recorded."""
    code = _first(_get(condition, "code", "coding"), lambda c: c.get("system") == ICD10) or {}
    return {
        "diagnosis_id": row_id(condition.get("id")),
        "visit_id": row_id(reference_id(condition.get("encounter"), "Encounter")),
        "icd10_code": code.get("code"),
        "description": code.get("display") or _get(condition, "code", "text"),
        "recorded_at": condition.get("recordedDate"),
        **_cdc(condition),
    }


def source_tables(resources: Mapping[str, Iterable[Resource]]) -> dict[str, pa.Table]:
    """The clinical source's five tables from current FHIR resources by type.

    Args:
        resources: live (not deleted) resources keyed by type: ``Patient``,
            ``Encounter``, ``Observation`` and ``Condition``; a missing type gives an
            empty table.

    Returns:
        ``patients``, ``visits``, ``observations``, ``lab_results`` and ``diagnoses`` with
        ``SOURCE_SCHEMAS``.
    """
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SOURCE_SCHEMAS}
    rows["patients"] = [patient_row(r) for r in resources.get("Patient", ())]
    rows["visits"] = [visit_row(r) for r in resources.get("Encounter", ())]
    for observation in resources.get("Observation", ()):
        if is_laboratory(observation):
            rows["lab_results"].append(lab_row(observation))
        else:
            rows["observations"].append(observation_row(observation))
    rows["diagnoses"] = [diagnosis_row(r) for r in resources.get("Condition", ())]
    return {
        name: pa.Table.from_pylist(rows[name], schema=schema)
        for name, schema in SOURCE_SCHEMAS.items()
    }
