"""The synthetic EHR source's patients as FHIR R4 resources (NDJSON, one file per type).

The same seeded rows as the SQL demo database, read back from it, so a FHIR-fed and a
SQL-fed run of the same hospital can be compared table for table. Codes come from
``transforms.fhir.codes``, the module the mapping back reads. Vital-sign sets and lab
results are both Observations, so their ids carry a prefix (``vs-1``, ``lab-1``): the
source numbers each table from 1. Names and MRNs are written
too (as a hospital's server would hold them); none of it leaves bronze.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transforms.fhir.codes import (
    CONSCIOUSNESS,
    ETHNIC_CATEGORY_EXTENSION,
    ICD10,
    LAB_TEST_SYSTEM,
    LOINC,
    NEWS2_SYSTEM,
    NHS_NUMBER_SYSTEM,
    OBSERVATION_CATEGORY,
    SEX_TO_GENDER,
    SUPPLEMENTAL_OXYGEN,
    VITAL_SIGN_UNITS,
    VITAL_SIGNS_PANEL,
)

Resource = dict[str, Any]
RESOURCE_TYPES = ("Patient", "Encounter", "Observation", "Condition")
MRN_SYSTEM = "https://flowehr.nhs.uk/Id/mrn"


def _clean(value: Any) -> Any:
    """FHIR forbids empty strings, arrays and objects: drop them (and nulls) recursively."""
    if isinstance(value, dict):
        kept = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (_clean(v) for v in value) if v not in (None, "", [], {})]
    return value


def _meta(row: sqlite3.Row) -> Resource:
    return {"versionId": "1", "lastUpdated": row["updated_at"]}


def _category(code: str) -> list[Resource]:
    return [{"coding": [{"system": OBSERVATION_CATEGORY, "code": code}]}]


def patient(row: sqlite3.Row) -> Resource:
    return {
        "resourceType": "Patient",
        "id": str(row["patient_id"]),
        "meta": _meta(row),
        "identifier": [
            {"system": NHS_NUMBER_SYSTEM, "value": row["nhs_number"]},
            {"system": MRN_SYSTEM, "value": row["mrn"]},
        ],
        "name": [{"family": row["family_name"], "given": [row["given_name"]]}],
        "gender": SEX_TO_GENDER.get(row["sex"] or ""),
        "birthDate": row["date_of_birth"],
        "address": [{"use": "home", "postalCode": row["postcode"]}],
        "extension": [
            {
                "url": ETHNIC_CATEGORY_EXTENSION,
                "valueCodeableConcept": {"text": row["ethnicity"]},
            }
        ],
    }


def encounter(row: sqlite3.Row) -> Resource:
    return {
        "resourceType": "Encounter",
        "id": str(row["visit_id"]),
        "meta": _meta(row),
        "status": "in-progress" if row["discharge_datetime"] is None else "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "type": [{"text": row["admission_type"]}],
        "subject": {"reference": f"Patient/{row['patient_id']}"},
        "period": {"start": row["admission_datetime"], "end": row["discharge_datetime"]},
        "location": [{"location": {"display": row["ward"]}}],
        "hospitalization": {"dischargeDisposition": {"text": row["discharge_disposition"]}},
    }


def vital_signs(row: sqlite3.Row, patient_id: int | None) -> Resource:
    components: list[Resource] = []
    for column, (code, unit) in VITAL_SIGN_UNITS.items():
        if row[column] is not None:
            components.append(
                {
                    "code": {"coding": [{"system": LOINC, "code": code}]},
                    "valueQuantity": {"value": row[column], "unit": unit},
                }
            )
    if row["consciousness"] is not None:
        components.append(
            {
                "code": {"coding": [{"system": LOINC, "code": CONSCIOUSNESS}]},
                "valueCodeableConcept": {
                    "coding": [{"system": NEWS2_SYSTEM, "code": row["consciousness"]}]
                },
            }
        )
    if row["on_supplemental_oxygen"] is not None:
        components.append(
            {
                "code": {"coding": [{"system": NEWS2_SYSTEM, "code": SUPPLEMENTAL_OXYGEN}]},
                "valueBoolean": bool(row["on_supplemental_oxygen"]),
            }
        )
    return {
        "resourceType": "Observation",
        "id": f"vs-{row['observation_id']}",
        "meta": _meta(row),
        "status": "final",
        "category": _category("vital-signs"),
        "code": {"coding": [{"system": LOINC, "code": VITAL_SIGNS_PANEL}]},
        "subject": {"reference": f"Patient/{patient_id}"} if patient_id is not None else None,
        "encounter": {"reference": f"Encounter/{row['visit_id']}"},
        "effectiveDateTime": row["observed_at"],
        "issued": row["charted_at"],
        "component": components,
    }


def lab_result(row: sqlite3.Row, patient_id: int | None) -> Resource:
    value = row["value"]
    return {
        "resourceType": "Observation",
        "id": f"lab-{row['lab_result_id']}",
        "meta": _meta(row),
        "status": "registered" if value is None else "final",
        "category": _category("laboratory"),
        "code": {"coding": [{"system": LAB_TEST_SYSTEM, "code": row["test_code"]}]},
        "subject": {"reference": f"Patient/{patient_id}"} if patient_id is not None else None,
        "encounter": {"reference": f"Encounter/{row['visit_id']}"},
        "effectiveDateTime": row["collected_at"],
        "issued": row["resulted_at"],
        "valueQuantity": {"value": value, "unit": row["unit"]} if value is not None else None,
        "referenceRange": [
            {"low": {"value": row["reference_low"]}, "high": {"value": row["reference_high"]}}
        ],
    }


def condition(row: sqlite3.Row, patient_id: int | None) -> Resource:
    return {
        "resourceType": "Condition",
        "id": str(row["diagnosis_id"]),
        "meta": _meta(row),
        "code": {
            "coding": [{"system": ICD10, "code": row["icd10_code"], "display": row["description"]}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "encounter": {"reference": f"Encounter/{row['visit_id']}"},
        "recordedDate": row["recorded_at"],
        "note": [{"text": row["clinical_note"]}],
    }


def fhir_resources(db_path: Path) -> dict[str, list[Resource]]:
    """Every live row of the source database as a FHIR resource, by resource type."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        owner = dict(conn.execute("SELECT visit_id, patient_id FROM visits").fetchall())

        def rows(table: str) -> Iterator[sqlite3.Row]:
            yield from conn.execute(f"SELECT * FROM {table} WHERE is_deleted = 0")  # nosec B608: table names from the synthetic schema

        found: dict[str, list[Resource]] = {
            "Patient": [patient(r) for r in rows("patients")],
            "Encounter": [encounter(r) for r in rows("visits")],
            "Observation": [vital_signs(r, owner.get(r["visit_id"])) for r in rows("observations")]
            + [lab_result(r, owner.get(r["visit_id"])) for r in rows("lab_results")],
            "Condition": [condition(r, owner.get(r["visit_id"])) for r in rows("diagnoses")],
        }
    finally:
        conn.close()
    return {kind: [_clean(r) for r in resources] for kind, resources in found.items()}


def write_fhir_ndjson(db_path: Path, out_dir: Path) -> dict[str, Path]:
    """Write ``<Type>.ndjson`` for each resource type; returns the files by type."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for kind, resources in fhir_resources(db_path).items():
        path = out_dir / f"{kind}.ndjson"
        path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in resources))
        written[kind] = path
    return written
