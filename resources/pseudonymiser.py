"""Hands the pseudonymisation key to the pure transforms, and nothing else.

The key arrives through an ``EnvVar`` (deployments) or as the path of a generated key
file (embedded environments), so it is never shown in the Dagster UI, and this resource
never logs or returns it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.settings import PSEUDONYMISATION_KEY_ENV
from transforms.identifiers import hmac_sha256_hex, nhs_number_problem

__all__ = ["PSEUDONYMISATION_KEY_ENV", "Pseudonymiser"]


class Pseudonymiser(dg.ConfigurableResource):
    """HMAC-SHA256 pseudonyms for patient identifiers, and NHS number validation."""

    key: str | None = Field(
        default=None, description="Secret key; supply it as EnvVar, never inline."
    )
    key_file: str | None = Field(
        default=None, description="A file holding the key, used when no key is given."
    )

    def _key_bytes(self) -> bytes:
        key = self.key
        if not key and self.key_file:
            key = Path(self.key_file).read_text(encoding="ascii").strip()
        if not key or len(key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 characters")
        return key.encode("utf-8")

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
