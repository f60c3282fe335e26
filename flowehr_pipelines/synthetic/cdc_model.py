"""The synthetic CDC feed: statuses, channels, lifecycle rates and the records of a client and
its campaigns.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from random import Random
from typing import Any

TRANSACTION_HISTORY = "transaction_history"

DAY_MS = 86_400_000

MINUTE_MS = 60_000

HOUR_MS = 3_600_000

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "truncated",
    "not_object",
    "missing_sk",
    "missing_timestamp",
    "bad_timestamp_type",
    "non_iso_date",
)

COMMUNICATION_TYPES: tuple[str, ...] = ("NHSAPP", "EMAIL", "SMS", "LETTER")

ITEM_STATUSES: tuple[str, ...] = (
    "PENDING_ENRICHMENT",
    "ENRICHED",
    "SENDING",
    "DELIVERED",
    "FAILED",
)

PLAN_STATUSES: tuple[str, ...] = ("PENDING", "SENDING", "DELIVERED", "FAILED", "SKIPPED")

PATIENT_POOL = 100_000

GP_PRACTICES = 400

WARMUP_DAYS = 2

LATE_DELIVERY_RATE = 0.05

CLIENT_RENAME_RATE = 0.02  # per client per day

LEGACY_TEMPLATE_RATE = 0.02  # plans that name their template only in ``templates.suppliers``

LETTER_SUPPLIERS: tuple[str, ...] = ("MBA", "SYNERTEC", "PRECISIONPROCO")

# Which contact details a plan used: the patient's record in PDS, or ones the client sent.
CONTACT_DETAIL_SOURCES: tuple[tuple[str, float], ...] = (("PDS", 0.9), ("CLIENT", 0.1))

SENDING_GROUP_NAMES: tuple[str, ...] = (
    "Appointment reminder",
    "Screening invitation",
    "Vaccination invitation",
    "Results available",
    "Waiting list validation",
    "Appointment cancellation",
)

STUCK_ITEM_RATE = 0.002  # never leaves PENDING_ENRICHMENT / ENRICHED

STUCK_PLAN_RATE = 0.003  # never leaves SENDING (so neither does its item)

ENRICHMENT_FAILURE_RATE = 0.01

PLAN_SKIP_RATE = 0.05

PLAN_FAILURE_RATE = {"NHSAPP": 0.35, "SMS": 0.08, "EMAIL": 0.1, "LETTER": 0.03}

RECORDS_PER_ITEM = 8.7  # measured mean over the lifecycle model; turns events into items

CHANNEL_PLANS: tuple[tuple[str, ...], ...] = (
    ("NHSAPP", "SMS"),
    ("NHSAPP", "SMS", "LETTER"),
    ("NHSAPP", "EMAIL", "LETTER"),
    ("SMS",),
    ("EMAIL",),
    ("LETTER",),
    ("SMS", "LETTER"),
)

ENRICHMENT_FAILURES = (
    ("Patient not found in PDS", "CM_PDS_NOT_FOUND"),
    ("Patient is recorded as deceased", "CM_PATIENT_DECEASED"),
    ("NHS number has been superseded", "CM_NHS_NUMBER_SUPERSEDED"),
)

PLAN_FAILURES: dict[str, tuple[tuple[str, str], ...]] = {
    "NHSAPP": (
        ("Patient is not an NHS App user", "CM_NHSAPP_NOT_REGISTERED"),
        ("NHS App notifications are switched off", "CM_NHSAPP_OPTED_OUT"),
    ),
    # GOV.UK Notify's delivery outcomes name their kind: TEMPORARY_ or PERMANENT_FAILURE.
    "SMS": (
        ("No mobile number on record", "CM_NO_MOBILE"),
        ("Supplier reported PERMANENT_FAILURE", "CM_SMS_PERMANENT_FAILURE"),
        ("Supplier reported TEMPORARY_FAILURE", "CM_SMS_TEMPORARY_FAILURE"),
    ),
    "EMAIL": (
        ("No email address on record", "CM_NO_EMAIL"),
        ("Supplier reported PERMANENT_FAILURE", "CM_EMAIL_PERMANENT_FAILURE"),
        ("Supplier reported TEMPORARY_FAILURE", "CM_EMAIL_TEMPORARY_FAILURE"),
    ),
    "LETTER": (
        ("Address is incomplete", "CM_INVALID_ADDRESS"),
        ("Letter returned to sender", "CM_LETTER_RETURNED"),
    ),
}

ALL_CHANNELS_FAILED = ("All communication channels failed", "CM_ALL_CHANNELS_FAILED")


# (median duration to delivery, log-sigma) per channel, in ms; letters are posted.
DELIVERY_TIME: dict[str, tuple[float, float]] = {
    "NHSAPP": (2 * MINUTE_MS, 1.0),
    "SMS": (1 * MINUTE_MS, 1.2),
    "EMAIL": (3 * MINUTE_MS, 1.2),
    "LETTER": (2 * DAY_MS, 0.3),
}


# One compact encoder, reused: json.dumps with non-default options builds a new one per call.
encode_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class CdcGenerationStats:
    """What :func:`write_cdc_landing` wrote, so tests can check it line by line."""

    records: int  # well-formed records written (including duplicates)
    duplicates: int  # exact re-deliveries of an earlier record
    malformed: dict[str, int]  # kind -> count of malformed lines written
    files: list[Path]


@dataclass
class Campaign:
    campaignid: str
    sendinggroupid: str
    sendinggroupidversion: int
    channels: tuple[str, ...]
    sendinggroupname: str = ""
    sendinggroupcreateddate: str = ""
    billingref: str | None = None
    templates: dict[str, str] = field(default_factory=dict)  # channel -> template id


@dataclass
class Client:
    clientid: str
    letter: str
    createddate: str
    letter_supplier: str
    odscode: str = ""
    campaigns: list[Campaign] = field(default_factory=list)
    renames: int = 0

    @property
    def clientname(self) -> str:
        variants = (
            f"Hospital Trust {self.letter}",
            f"Hospital Trust {self.letter} NHS Foundation Trust",
            f"{self.letter} University Hospitals NHS Trust",
            f"{self.letter} and District Hospitals NHS Foundation Trust",
        )
        return variants[self.renames % len(variants)]


def epoch_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_MS


def weighted_choice(rng: Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def contact_id(nhsnumber: str, channel: str) -> str | None:
    """One id per recipient and contact channel (SMS and email), as NHS Notify keeps them."""
    if channel not in ("SMS", "EMAIL"):
        return None
    digest = hashlib.sha256(f"contact:{channel}:{nhsnumber}".encode()).hexdigest()
    return str(uuid.UUID(hex=digest[:32], version=4))


def message_specification(rng: Random, channel: str, supplier: str) -> dict[str, Any]:
    """What a message is billed by: SMS fragments, letter sheets; nothing for app and email."""
    if channel == "SMS":
        fragments = rng.choices((1, 2, 3), weights=(70, 25, 5))[0]
        return {
            "specificationid": None,
            "specificationbillingid": None,
            "messagelength": fragments,
            "messagelengthunits": "FRAGMENTS",
        }
    if channel == "LETTER":
        sheets = rng.choices((1, 2, 3), weights=(60, 30, 10))[0]
        return {
            "specificationid": f"{supplier.lower()}-standard-c5",
            "specificationbillingid": f"{supplier}-C5-{sheets}",
            "messagelength": sheets,
            "messagelengthunits": "SHEETS",
        }
    return {
        "specificationid": None,
        "specificationbillingid": None,
        "messagelength": None,
        "messagelengthunits": None,
    }
