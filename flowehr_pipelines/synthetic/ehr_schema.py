"""The synthetic EHR source: its tables, rates of planted problems, and the NHS-number generator."""

from __future__ import annotations

import calendar
import functools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

from flowehr_pipelines.synthetic import names
from transforms.identifiers import nhs_number_check_digit

_T = TypeVar("_T")

HOUR = 3600

DAY = 24 * HOUR

INVALID_NHS_NUMBER_RATE = 0.005

SPACED_NHS_NUMBER_RATE = 0.15

IMPOSSIBLE_DOB_RATE = 0.001

ORPHAN_VISIT_RATE = 0.0005

ORPHAN_PATIENT_ID_BASE = 1_000_000_000  # no generated patient ever gets an id this high

READMISSION_RATE = 0.35

MISSING_READING_RATE = 0.015

IDENTIFYING_NOTE_RATE = 0.05

# When facts become known (the bitemporal side of the source). Most observation sets are
# charted as they are taken; some are entered later from paper. Every lab result comes
# back after its collection, a few very late (sent away, re-run). Some diagnoses are
# coded by clinical coders after discharge rather than on the ward.
LATE_CHARTING_RATE = 0.12

LATE_RESULT_RATE = 0.08

CODED_AFTER_DISCHARGE_RATE = 0.3

NEW_PATIENT_LOOKBACK_DAYS = 14

_NHS_BASE_SPACE = 10**7

_NHS_MULTIPLIER = 48_271  # coprime with 10**7, so index -> base is a permutation

TABLES: dict[str, tuple[str, ...]] = {
    "patients": (
        "patient_id",
        "mrn",
        "nhs_number",
        "given_name",
        "family_name",
        "date_of_birth",
        "sex",
        "postcode",
        "ethnicity",
    ),
    "visits": (
        "visit_id",
        "patient_id",
        "admission_datetime",
        "discharge_datetime",
        "admission_type",
        "ward",
        "discharge_disposition",
    ),
    "observations": (
        "observation_id",
        "visit_id",
        "observed_at",
        "charted_at",
        "respiratory_rate",
        "spo2",
        "on_supplemental_oxygen",
        "temperature",
        "systolic_bp",
        "heart_rate",
        "consciousness",
    ),
    "lab_results": (
        "lab_result_id",
        "visit_id",
        "collected_at",
        "resulted_at",
        "test_code",
        "value",
        "unit",
        "reference_low",
        "reference_high",
    ),
    "diagnoses": (
        "diagnosis_id",
        "visit_id",
        "icd10_code",
        "description",
        "recorded_at",
        "clinical_note",
    ),
}

CDC_COLUMNS = ("updated_at", "change_seq", "is_deleted")

SCHEMA = """
CREATE TABLE patients (
    patient_id INTEGER PRIMARY KEY, mrn TEXT NOT NULL, nhs_number TEXT, given_name TEXT,
    family_name TEXT, date_of_birth TEXT, sex TEXT, postcode TEXT, ethnicity TEXT,
    updated_at TEXT, change_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE visits (
    visit_id INTEGER PRIMARY KEY, patient_id INTEGER, admission_datetime TEXT,
    discharge_datetime TEXT, admission_type TEXT, ward TEXT, discharge_disposition TEXT,
    updated_at TEXT, change_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE observations (
    observation_id INTEGER PRIMARY KEY, visit_id INTEGER, observed_at TEXT, charted_at TEXT,
    respiratory_rate INTEGER, spo2 INTEGER, on_supplemental_oxygen INTEGER,
    temperature REAL, systolic_bp INTEGER, heart_rate INTEGER, consciousness TEXT,
    updated_at TEXT, change_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE lab_results (
    lab_result_id INTEGER PRIMARY KEY, visit_id INTEGER, collected_at TEXT, resulted_at TEXT,
    test_code TEXT,
    value REAL, unit TEXT, reference_low REAL, reference_high REAL,
    updated_at TEXT, change_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE diagnoses (
    diagnosis_id INTEGER PRIMARY KEY, visit_id INTEGER, icd10_code TEXT, description TEXT,
    recorded_at TEXT, clinical_note TEXT,
    updated_at TEXT, change_seq INTEGER NOT NULL, is_deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE source_metadata (key TEXT PRIMARY KEY, value TEXT);
"""


# Built after the bulk insert: cheaper than maintaining the indexes row by row.
INDEXES = (
    *(f"CREATE INDEX ix_{table}_change_seq ON {table} (change_seq)" for table in TABLES),
    "CREATE INDEX ix_visits_patient_id ON visits (patient_id)",
)


# (code, unit, reference low, reference high)
LAB_TESTS: tuple[tuple[str, str, float, float], ...] = (
    ("HB", "g/L", 115.0, 165.0),
    ("WBC", "10^9/L", 4.0, 11.0),
    ("CRP", "mg/L", 0.0, 5.0),
    ("CREAT", "umol/L", 59.0, 104.0),
    ("NA", "mmol/L", 133.0, 146.0),
    ("K", "mmol/L", 3.5, 5.3),
    ("LACTATE", "mmol/L", 0.5, 2.2),
)

LAB_BY_CODE = {test[0]: test for test in LAB_TESTS}

ETHNICITY_NAMES = tuple(name for name, _ in names.ETHNICITIES)

ETHNICITY_CUM_WEIGHTS = tuple(
    sum(weight for _, weight in names.ETHNICITIES[: i + 1]) for i in range(len(names.ETHNICITIES))
)

ELECTIVE_DIAGNOSES = tuple(
    dx for dx in names.DIAGNOSES if dx[0] in {"K80.2", "M17.1", "C34.9", "E11.9", "I48.9"}
)

CRITICAL_CARE_WARDS = ("Intensive Care Unit", "High Dependency Unit")

ELECTIVE_WARDS = ("General Surgery", "Orthopaedics", "Day Surgery", "Oncology", "Cardiology")

EMERGENCY_WARDS = tuple(
    ward for ward in names.WARDS if ward not in (*CRITICAL_CARE_WARDS, "Day Surgery")
)

VISIT_COUNTS = (0, 1, 2, 3)

VISIT_COUNT_WEIGHTS = (0.40, 0.38, 0.15, 0.07)

REDUCED_CONSCIOUSNESS = ("C", "V", "P", "U")

REDUCED_CONSCIOUSNESS_WEIGHTS = (0.45, 0.3, 0.15, 0.1)


@dataclass(frozen=True)
class EhrGenerationStats:
    """What :func:`write_ehr_source` wrote, so callers can log and tests can verify it."""

    patients: int
    visits: int
    observations: int
    lab_results: int
    diagnoses: int
    invalid_nhs_numbers: int  # patients deliberately given an invalid NHS number
    last_change_seq: int


def iso_utc(epoch_seconds: float) -> str:
    """Format epoch seconds as ``2026-11-20T13:45:00Z`` (the source's timestamp format)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def parse_iso_utc(value: str) -> int:
    return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))


def epoch_of_day(day: date) -> int:
    return calendar.timegm(day.timetuple())


@functools.lru_cache(maxsize=16)
def _nhs_offset(seed: int) -> int:
    return random.Random(f"nhs-number-offset:{seed}").randrange(_NHS_BASE_SPACE)  # nosec B311: synthetic demo data, not security


def synthetic_nhs_number(index: int, seed: int) -> str:
    """A valid, ten-digit NHS number unique to ``index`` (0 <= index < 10**7) for a seed.

    The nine-digit stem is ``9`` + lead + a seeded permutation of the index. When lead 0
    gives a stem with no valid check digit (remainder 10), lead 1 shifts the weighted
    sum by 9 (mod 11) and therefore always works; lead 1 stems are used for nothing
    else, so numbers stay unique. Prefixes 90/91 are not issued to real patients.
    """
    if not 0 <= index < _NHS_BASE_SPACE:
        raise ValueError(f"index must be in [0, {_NHS_BASE_SPACE}), got {index}")
    base = (index * _NHS_MULTIPLIER + _nhs_offset(seed)) % _NHS_BASE_SPACE
    for lead in (0, 1):
        stem = f"9{lead}{base:07d}"
        check = nhs_number_check_digit(stem)
        if check is not None:
            return f"{stem}{check}"
    raise AssertionError("unreachable: one of two adjacent leads always has a check digit")


def reading_or_missing(rand: Callable[[], float], value: _T) -> _T | None:
    """A vital sign, or None for the occasional reading nobody charted."""
    return None if rand() < MISSING_READING_RATE else value


def dob_epoch(dob: str) -> int:
    year, month, day = (int(part) for part in dob.split("-"))
    return epoch_of_day(date(year, month, day))


def replace_sqlite_file(tmp_path: Path, db_path: Path) -> None:
    """Move a finished database into place, dropping the old one's journal files."""
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = db_path.with_name(db_path.name + suffix)
        if sidecar.exists():
            sidecar.unlink()
    os.replace(tmp_path, db_path)
