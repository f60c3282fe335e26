"""Settings of the FHIR and PDS integrations (``fhir_sources`` and ``pds``).

Secrets are named, never written: ``*_env`` keys name the environment variables that
hold a bearer token, a private key or an API key, read at run launch through
``dg.EnvVar``.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

from pydantic import Field, field_validator

from resources.settings import StrictSettings

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_RESOURCE_TYPES = ("Patient", "Encounter", "Observation", "Condition")


class FhirSourceSettings(StrictSettings):
    """A FHIR server exported with Bulk Data ``$export``; the name is its resource key."""

    name: str
    description: str = ""
    base_url: str = Field(description="The FHIR R4 base URL.")
    export_level: Literal["system", "patient", "group"] = "system"
    group_id: str | None = None
    resource_types: list[str] = Field(default_factory=lambda: list(DEFAULT_RESOURCE_TYPES))
    auth: Literal["none", "bearer", "client_assertion"] = "none"
    bearer_token_env: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    private_key_env: str | None = None
    key_id: str | None = None
    signing_algorithm: Literal["RS384", "ES384", "RS512"] = "RS384"
    scope: str | None = "system/*.read"
    allowed_file_origins: list[str] = Field(default_factory=list)
    poll_max_seconds: float = Field(default=120.0, gt=0)
    export_timeout_seconds: float = Field(default=6 * 3600.0, gt=0)
    feeds_clinical_source: bool = Field(
        default=False,
        description=(
            "Map this source onto the clinical source's bronze tables (bronze/ehr/...), "
            "for a hospital without a SQL source named 'ehr'."
        ),
    )

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be snake_case (letters, digits, underscores)")
        return value

    @field_validator("resource_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for kind in value:
            if not re.fullmatch(r"[A-Z][A-Za-z]+", kind):
                raise ValueError(f"{kind!r} is not a FHIR resource type")
        return value


PdsEnvironment = Literal["sandbox", "integration", "production"]


class PdsSettings(StrictSettings):
    """PDS FHIR API trace/verify in application-restricted mode (off unless enabled)."""

    enabled: bool = False
    environment: PdsEnvironment = "sandbox"
    base_url: str | None = Field(default=None, description="Overrides the environment's URL.")
    token_url: str | None = Field(default=None, description="Overrides the environment's URL.")
    api_key_env: str = "PDS_API_KEY"
    private_key_env: str = "PDS_PRIVATE_KEY"
    key_id: str | None = Field(default=None, description="The kid registered in the JWKS.")
    max_concurrency: int = Field(default=4, gt=0, le=32)
    requests_per_second: float = Field(default=5.0, gt=0)
    token_refresh_margin_seconds: float = Field(default=60.0, ge=0)
    reverify_after_days: int = Field(
        default=30, gt=0, description="Numbers checked longer ago than this are read again."
    )


class FhirDomain(Protocol):
    """What the FHIR and PDS integrations read of a deployment's settings."""

    @property
    def fhir_sources(self) -> list[FhirSourceSettings]: ...

    @property
    def pds(self) -> PdsSettings: ...


def integration_secret_names(settings: FhirDomain) -> list[str]:
    """The environment variables the integrations' config names as secrets.

    Here, beside the settings, so listing them needs no Dagster import.
    """
    names: list[str | None] = []
    for source in settings.fhir_sources:
        names += [source.bearer_token_env, source.private_key_env]
    if settings.pds.enabled and settings.pds.environment != "sandbox":
        names += [settings.pds.api_key_env, settings.pds.private_key_env]
    return [n for n in names if n]
