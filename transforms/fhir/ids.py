"""Numeric row ids for FHIR logical ids, and FHIR times as epoch microseconds."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

_MAX_NUMERIC_ID = 2**62
_HASHED_ID_BASE = 2**62
_PREFIXED_SEQUENCE = re.compile(r"[A-Za-z]+-([0-9]{1,18})")


def row_id(logical_id: str | None) -> int | None:
    """The silver row id of a FHIR logical id.

    The clinical source's tables key rows by integers, and servers that mint ids from a
    database sequence use digits, bare or behind a letters-and-hyphen prefix (``lab-17``,
    used where two tables of one source share a resource type): the digits are kept, so
    a FHIR-fed and a SQL-fed load of one hospital give one id per row. Any other id (a
    UUID) becomes a stable number at or above 2**62 from its SHA-256, which no digit id
    reaches. Two resources of one table that still meet on an id are both quarantined
    by silver as a duplicate key, never merged.

    Args:
        logical_id: ``Resource.id``, or the id part of a reference.

    Returns:
        The row id, or None for a missing id.
    """
    if not logical_id:
        return None
    prefixed = _PREFIXED_SEQUENCE.fullmatch(logical_id)
    digits = prefixed.group(1) if prefixed else logical_id
    if digits.isascii() and digits.isdigit() and int(digits) < _MAX_NUMERIC_ID:
        return int(digits)
    digest = hashlib.sha256(logical_id.encode("utf-8")).digest()
    return _HASHED_ID_BASE + (int.from_bytes(digest[:8], "big") % _HASHED_ID_BASE)


def reference_id(reference: object, resource_type: str) -> str | None:
    """The logical id of a literal reference such as ``Patient/123`` (None otherwise)."""
    if not isinstance(reference, dict):
        return None
    text = reference.get("reference")
    if not isinstance(text, str):
        return None
    parts = text.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type:
        return parts[-1]
    return None


def instant_micros(value: str) -> int:
    """A FHIR instant (``2026-03-01T10:00:00.123+00:00``) as UTC epoch microseconds.

    Raises:
        ValueError: when the text is not an instant with a time zone.
    """
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("an instant needs a time zone")
    delta = parsed.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def micros_instant(micros: int) -> str:
    """UTC epoch microseconds as a FHIR instant (what ``_since`` takes)."""
    moment = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
        microsecond=micros % 1_000_000
    )
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
