"""What a PDS ``GET /Patient/{nhsNumber}`` answer says about one NHS number, and no more.

Only the outcome is kept: verified, not found, superseded (with the number PDS now
uses: a merged record answers with a different ``id``), or invalid; and two flags,
deceased (``deceasedDateTime`` present) and restricted (``meta.security`` code ``R``
or ``V``: a sensitive record whose address must not be used). Names, addresses, dates
of birth and GP details in the answer are never read into anything that is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["verified", "not_found", "superseded", "invalid"]
RESTRICTED_CODES = frozenset({"R", "V"})


@dataclass(frozen=True)
class PdsOutcome:
    """One NHS number's verification result (no demographics)."""

    nhs_number: str
    outcome: Outcome
    superseded_by: str | None = None
    deceased: bool = False
    restricted: bool = False


def is_restricted(patient: dict[str, Any]) -> bool:
    """Whether a PDS Patient carries a restricted (sensitive) confidentiality label."""
    meta = patient.get("meta") if isinstance(patient.get("meta"), dict) else {}
    labels = meta.get("security") if isinstance(meta, dict) else None
    return any(
        isinstance(label, dict) and label.get("code") in RESTRICTED_CODES for label in labels or []
    )


def outcome_of(nhs_number: str, status: int, body: Any) -> PdsOutcome | None:
    """The outcome of one read, or None when the answer says nothing about the patient.

    Args:
        nhs_number: the ten digits asked for.
        status: the HTTP status of the final answer.
        body: its JSON (None when it had none).

    Returns:
        ``verified`` / ``superseded`` for a 200 Patient, ``not_found`` for 404,
        ``invalid`` for a 400 (PDS refuses a malformed number); None otherwise (a
        failure to retry later).
    """
    if status == 404:
        return PdsOutcome(nhs_number, "not_found")
    if status == 400:
        return PdsOutcome(nhs_number, "invalid")
    if status != 200 or not isinstance(body, dict) or body.get("resourceType") != "Patient":
        return None
    current = body.get("id")
    if not isinstance(current, str) or not current:
        return None
    return PdsOutcome(
        nhs_number,
        "verified" if current == nhs_number else "superseded",
        superseded_by=None if current == nhs_number else current,
        deceased="deceasedDateTime" in body,
        restricted=is_restricted(body),
    )
