"""Asset keys that cross domains: the clinical source's bronze and silver tables.

The EHR domain writes them and the feature store reads them; one spelling here keeps
the two from drifting apart.
"""

from __future__ import annotations

import dagster as dg

from assets.ehr.settings import CLINICAL_SOURCE

__all__ = ["CLINICAL_SOURCE", "PDS_VERIFICATION", "bronze_key", "silver_key"]


def silver_key(table: str) -> dg.AssetKey:
    """The silver (cleaned) table of the clinical source."""
    return dg.AssetKey(["silver", CLINICAL_SOURCE, table])


def bronze_key(table: str) -> dg.AssetKey:
    """The bronze (raw, as landed) table of the clinical source."""
    return dg.AssetKey(["bronze", CLINICAL_SOURCE, table])


PDS_VERIFICATION = bronze_key("pds_verification")
"""PDS's outcome per NHS number of the clinical source (written by ``assets.fhir.pds``)."""
