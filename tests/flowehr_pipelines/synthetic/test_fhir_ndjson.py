"""The synthetic hospital as FHIR NDJSON: valid R4 resources, one per live source row."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.fhir_ndjson import RESOURCE_TYPES, write_fhir_ndjson
from transforms.fhir.ndjson import validation_reason


def test_every_live_row_becomes_one_valid_resource_and_the_output_is_repeatable(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ehr.db"
    write_ehr_source(db, patients=10, days=2, start_date=date(2026, 3, 1), seed=2)
    first = write_fhir_ndjson(db, tmp_path / "a")
    second = write_fhir_ndjson(db, tmp_path / "b")
    assert set(first) == set(RESOURCE_TYPES)
    assert all(first[k].read_bytes() == second[k].read_bytes() for k in first)
    with sqlite3.connect(db) as conn:
        live = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE is_deleted = 0").fetchone()[0]
            for table in ("patients", "visits", "observations", "lab_results", "diagnoses")
        }
    resources = {
        kind: [json.loads(line) for line in path.read_text().splitlines()]
        for kind, path in first.items()
    }
    assert len(resources["Patient"]) == live["patients"]
    assert len(resources["Encounter"]) == live["visits"]
    assert len(resources["Observation"]) == live["observations"] + live["lab_results"]
    assert len(resources["Condition"]) == live["diagnoses"]
    for kind, items in resources.items():
        assert all(validation_reason(r, kind) is None for r in items)
