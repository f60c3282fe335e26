"""Hands the pseudonymisation key to the pure transforms, and nothing else.

The key arrives through an ``EnvVar`` so it is never shown in the Dagster UI, and
this resource never logs or returns it.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from transforms.identifiers import hmac_sha256_hex, nhs_number_problem

PSEUDONYMISATION_KEY_ENV = "FLOWEHR_PSEUDONYMISATION_KEY"


class Pseudonymiser(dg.ConfigurableResource):
    """HMAC-SHA256 pseudonyms for patient identifiers, and NHS number validation."""

    key: str = Field(description="Secret key; supply it as EnvVar, never inline.")

    def _key_bytes(self) -> bytes:
        if len(self.key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 characters")
        return self.key.encode("utf-8")

    def hash_value(self, value: str) -> str:
        """Pseudonym of one identifier (64 hex characters)."""
        return hmac_sha256_hex(self._key_bytes(), value)

    def key_bytes(self) -> bytes:
        """The key for a pure transform; callers must not log or store it."""
        return self._key_bytes()

    @staticmethod
    def nhs_number_problem(value: object) -> str | None:
        """Why a value is not a valid NHS number, or None when it is."""
        return nhs_number_problem(value)

    def __repr__(self) -> str:
        return "Pseudonymiser(key=***)"
