"""Resources of the NHS integrations (FHIR Bulk Data sources, PDS) from the settings.

Kept apart from ``deployment`` so the integrations add one line there. Every secret is a
``dg.EnvVar`` named by config: read at run launch, never shown in the UI.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.fhir.bronze import fhir_resource_key
from assets.fhir.settings import FhirDomain, FhirSourceSettings
from resources.fhir_bulk import FhirBulkDataResource
from resources.pds import PdsResource


def _env(name: str | None) -> Any:
    return dg.EnvVar(name) if name else None


def build_fhir_client(source: FhirSourceSettings) -> FhirBulkDataResource:
    """The Bulk Data client of one configured FHIR source."""
    return FhirBulkDataResource(
        base_url=source.base_url,
        export_level=source.export_level,
        group_id=source.group_id,
        resource_types=source.resource_types,
        auth=source.auth,
        bearer_token=_env(source.bearer_token_env),
        token_url=source.token_url,
        client_id=source.client_id,
        private_key=_env(source.private_key_env),
        key_id=source.key_id,
        signing_algorithm=source.signing_algorithm,
        scope=source.scope,
        allowed_file_origins=source.allowed_file_origins,
        poll_max_seconds=source.poll_max_seconds,
        export_timeout_seconds=source.export_timeout_seconds,
    )


def build_pds_client(settings: FhirDomain) -> PdsResource:
    """The PDS client of the configured environment (the sandbox needs no secret)."""
    pds = settings.pds
    signed = pds.environment != "sandbox" or pds.token_url is not None
    return PdsResource(
        environment=pds.environment,
        base_url=pds.base_url,
        token_url=pds.token_url,
        api_key=_env(pds.api_key_env) if signed else None,
        private_key=_env(pds.private_key_env) if signed else None,
        key_id=pds.key_id,
        max_concurrency=pds.max_concurrency,
        requests_per_second=pds.requests_per_second,
        token_refresh_margin_seconds=pds.token_refresh_margin_seconds,
    )


def build_integration_resources(settings: FhirDomain) -> dict[str, Any]:
    """The FHIR clients (and the PDS client when enabled), keyed as the assets name them."""
    resources: dict[str, Any] = {
        fhir_resource_key(s): build_fhir_client(s) for s in settings.fhir_sources
    }
    if settings.pds.enabled:
        resources["pds"] = build_pds_client(settings)
    return resources
