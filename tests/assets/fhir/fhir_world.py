"""A small synthetic hospital served by the loopback Bulk Data server, and its client."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from assets.fhir.settings import FhirSourceSettings
from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.fhir_ndjson import fhir_resources
from resources.fhir_bulk import FhirBulkDataResource
from tests.fhir_server import BulkServer

TYPES = ["Patient", "Encounter", "Observation", "Condition"]


def write_source(tmp: Path, *, patients: int = 12, seed: int = 5) -> Path:
    db = tmp / "source" / "ehr.db"
    write_ehr_source(db, patients=patients, days=3, start_date=date(2026, 3, 1), seed=seed)
    return db


def serve(server: BulkServer, db: Path) -> dict[str, list[dict[str, Any]]]:
    resources = fhir_resources(db)
    server.load(resources)
    return resources


def source_settings(name: str = "fhir", **overrides: Any) -> FhirSourceSettings:
    return FhirSourceSettings(
        name=name, base_url="http://unused", resource_types=TYPES, **overrides
    )


def client(server: BulkServer, **overrides: Any) -> FhirBulkDataResource:
    config: dict[str, Any] = {
        "base_url": f"{server.base_url}/fhir",
        "resource_types": TYPES,
        "poll_min_seconds": 0.01,
        "poll_max_seconds": 0.05,
        "backoff_seconds": 0.01,
        "request_timeout_seconds": 5.0,
        "attempts": 3,
        **overrides,
    }
    return FhirBulkDataResource(**config)
