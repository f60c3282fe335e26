"""The FHIR sources' identifiers for the privacy scan, read from their bronze Patients.

A FHIR-fed hospital has no source database to read NHS numbers, names, dates of birth,
postcodes and MRNs from; the landed Patient resources hold the same values, so the scan
compares the published zones with those instead.
"""

from __future__ import annotations

from typing import Any

from assets.fhir.landing import live_resources
from assets.fhir.settings import FhirDomain
from flowehr_pipelines.privacy_scan import KnownIdentifiers
from resources.delta.store import DeltaTableStore
from transforms.fhir.codes import NHS_NUMBER_SYSTEM


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def add_patient(known: KnownIdentifiers, patient: dict[str, Any]) -> None:
    """Every identifier one Patient resource carries."""
    for identifier in _items(patient.get("identifier")):
        kind = "nhs_number" if identifier.get("system") == NHS_NUMBER_SYSTEM else "mrn"
        known.add(kind, identifier.get("value"))
    for name in _items(patient.get("name")):
        given = [g for g in name.get("given") or [] if isinstance(g, str)]
        for part in given:
            known.add("given_name", part)
        known.add("family_name", name.get("family"))
        if given:
            known.add_full_name(given[0], name.get("family"))
    known.add("date_of_birth", patient.get("birthDate"))
    for address in _items(patient.get("address")):
        known.add("postcode", address.get("postalCode"))


def collect_fhir_identifiers(
    settings: FhirDomain, delta: DeltaTableStore, known: KnownIdentifiers
) -> None:
    """Add the identifiers of every FHIR source's current Patients to ``known``."""
    for source in settings.fhir_sources:
        if "Patient" in source.resource_types:
            for patient in live_resources(delta, source.name, "Patient"):
                add_patient(known, patient)
