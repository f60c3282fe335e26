"""The FHIR and PDS integrations' definitions for one deployment."""

import dagster as dg

from assets.fhir.bronze import build_fhir_source_defs
from assets.fhir.clinical import build_clinical_mapping_defs
from assets.fhir.pds import build_pds_defs
from assets.fhir.settings import FhirDomain


def build_defs(settings: FhirDomain) -> dg.Definitions:
    """A bronze export asset per FHIR source, the clinical mapping, and PDS when enabled."""
    assets: list[dg.AssetsDefinition] = []
    for source in settings.fhir_sources:
        assets.append(build_fhir_source_defs(source=source))
        if source.feeds_clinical_source:
            assets.append(build_clinical_mapping_defs(source=source))
    if settings.pds.enabled:
        assets.append(build_pds_defs(settings=settings.pds))
    return dg.Definitions(assets=assets)
