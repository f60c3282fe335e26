"""A deterministic, streaming generator for the embedded EHR source database (SQLite).

Design choices:

* **Streaming.** Rows are generated one patient at a time and written with
  ``executemany`` in batches of ``batch_size`` per table, so memory stays flat whether
  we write a thousand patients or a million. Nothing ever holds the whole dataset.
* **Deterministic.** Every random draw comes from one ``random.Random(seed)`` consumed
  in a fixed order, and the clock is never read: the generation time recorded in the
  database is the end of the generated period. Same seed and arguments give the same
  rows and, with the same SQLite library, the same file bytes.
* **Atomic.** The database is written to ``<name>.tmp`` next to the target and moved
  into place with ``os.replace``, so a crash never leaves a half-written source.
* **CDC-friendly.** One global ``change_seq`` across all tables, ``updated_at`` and
  tombstones (``is_deleted``) let the pipeline load incrementally;
  :func:`apply_source_changes` simulates activity after a load;
  ``ehr_writer.write_ehr_source`` writes a whole database.
* **Realistically dirty.** A few NHS numbers are invalid, some dates of birth are
  impossible, some visits are orphans, some readings are missing and some clinical
  notes mention the patient's name or NHS number, so quality checks and
  de-identification have something to find.

Synthetic NHS numbers start with 90 or 91, outside the ranges issued to real patients,
and are unique per ``patient_id`` for a given seed (see :func:`synthetic_nhs_number`).
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flowehr_pipelines.synthetic import names
from flowehr_pipelines.synthetic.ehr_schema import (
    CDC_COLUMNS,
    CRITICAL_CARE_WARDS,
    DAY,
    ELECTIVE_DIAGNOSES,
    ELECTIVE_WARDS,
    EMERGENCY_WARDS,
    ETHNICITY_CUM_WEIGHTS,
    ETHNICITY_NAMES,
    HOUR,
    IDENTIFYING_NOTE_RATE,
    IMPOSSIBLE_DOB_RATE,
    INVALID_NHS_NUMBER_RATE,
    LAB_BY_CODE,
    ORPHAN_PATIENT_ID_BASE,
    ORPHAN_VISIT_RATE,
    READMISSION_RATE,
    REDUCED_CONSCIOUSNESS,
    REDUCED_CONSCIOUSNESS_WEIGHTS,
    SPACED_NHS_NUMBER_RATE,
    TABLES,
    VISIT_COUNT_WEIGHTS,
    VISIT_COUNTS,
    dob_epoch,
    iso_utc,
    reading_or_missing,
    synthetic_nhs_number,
)
from flowehr_pipelines.synthetic.known_at import KnownAtClock

"""Business columns per table, primary key first; every table also has the CDC columns."""


class SourceWriter:
    """Generates patients (with visits, observations, labs, diagnoses) into a connection.

    Rows are buffered per table and flushed with ``executemany`` every ``batch_size``
    rows, which bounds memory. ``change_seq`` is assigned in generation order.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        rng: random.Random,
        *,
        seed: int,
        batch_size: int,
        next_change_seq: int,
        next_ids: dict[str, int],
        updated_at_override: str | None = None,
    ) -> None:
        self.conn = conn
        self.rng = rng
        self.known = KnownAtClock(f"known-at:{seed}:{next_change_seq}")
        self.seed = seed
        self.batch_size = max(1, batch_size)
        self.next_change_seq = next_change_seq
        self.next_ids = dict(next_ids)
        self.updated_at_override = updated_at_override
        self.counts = dict.fromkeys(TABLES, 0)
        self.invalid_nhs_numbers = 0
        self._buffers: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLES}
        self._inserts = {
            table: (
                f"INSERT INTO {table} ({', '.join(columns + CDC_COLUMNS)}) "  # nosec B608: identifiers from code or validated config; values bound
                f"VALUES ({', '.join('?' * (len(columns) + len(CDC_COLUMNS)))})"
            )
            for table, columns in TABLES.items()
        }

    # -- plumbing -----------------------------------------------------------------------

    def _new_id(self, table: str) -> int:
        value = self.next_ids[table]
        self.next_ids[table] = value + 1
        return value

    def _add(self, table: str, row: tuple[Any, ...], updated_at: str) -> None:
        seq = self.next_change_seq
        self.next_change_seq = seq + 1
        stamp = self.updated_at_override or updated_at
        buffer = self._buffers[table]
        buffer.append((*row, stamp, seq, 0))
        self.counts[table] += 1
        if len(buffer) >= self.batch_size:
            self._flush(table)

    def _flush(self, table: str) -> None:
        buffer = self._buffers[table]
        if buffer:
            self.conn.executemany(self._inserts[table], buffer)
            buffer.clear()

    def flush_all(self) -> None:
        """Write whatever is still buffered."""
        for table in TABLES:
            self._flush(table)

    @property
    def last_change_seq(self) -> int:
        return self.next_change_seq - 1

    # -- patients -----------------------------------------------------------------------

    def _nhs_number(self, patient_id: int) -> str:
        rng = self.rng
        number = synthetic_nhs_number(patient_id, self.seed)
        if rng.random() < INVALID_NHS_NUMBER_RATE:
            self.invalid_nhs_numbers += 1
            if rng.random() < 0.5:
                return number[:9]  # nine digits: a digit lost in transcription
            wrong = (int(number[9]) + 1 + rng.randrange(9)) % 10
            return f"{number[:9]}{wrong}"
        if rng.random() < SPACED_NHS_NUMBER_RATE:
            return f"{number[:3]} {number[3:6]} {number[6:]}"
        return number

    def _date_of_birth(self, period_start: int) -> str:
        rng = self.rng
        if rng.random() < IMPOSSIBLE_DOB_RATE:
            if rng.random() < 0.5:
                born = date(1850, 1, 1) + timedelta(days=rng.randrange(50 * 365))
            else:
                start = datetime.fromtimestamp(period_start, UTC).date()
                born = start + timedelta(days=rng.randrange(30, 3000))
            return born.isoformat()
        if rng.random() < 0.12:
            age_days = rng.uniform(0.0, 18.0) * 365.25
        else:  # adults skew older, as hospital populations do
            age_days = (18.0 + 82.0 * rng.betavariate(2.2, 1.4)) * 365.25
        born_ts = period_start - age_days * DAY
        return time.strftime("%Y-%m-%d", time.gmtime(born_ts))

    def patient(self, period_start: int, period_end: int) -> None:
        """Generate one patient and their visits in ``[period_start, period_end)``."""
        rng = self.rng
        patient_id = self._new_id("patients")
        roll = rng.random()
        sex = "F" if roll < 0.5 else ("M" if roll < 0.99 else "U")
        female = sex == "F" or (sex == "U" and rng.random() < 0.5)
        given = rng.choice(names.GIVEN_NAMES_FEMALE if female else names.GIVEN_NAMES_MALE)
        family = rng.choice(names.FAMILY_NAMES)
        nhs_number = self._nhs_number(patient_id)
        dob = self._date_of_birth(period_start)
        letters = names.POSTCODE_UNIT_LETTERS
        postcode = (
            f"{rng.choice(names.POSTCODE_DISTRICTS)} {rng.randrange(10)}"
            f"{rng.choice(letters)}{rng.choice(letters)}"
        )
        ethnicity = rng.choices(ETHNICITY_NAMES, cum_weights=ETHNICITY_CUM_WEIGHTS)[0]
        registered = period_start - rng.randrange(1, 730 * DAY)
        self._add(
            "patients",
            (
                patient_id,
                f"MRN{patient_id:08d}",
                nhs_number,
                given,
                family,
                dob,
                sex,
                postcode,
                ethnicity,
            ),
            iso_utc(registered),
        )
        age_years = (period_start - dob_epoch(dob)) / (365.25 * DAY)
        frailty = min(max(age_years, 0.0), 100.0) / 100.0
        self._visits(patient_id, given, family, nhs_number, frailty, period_start, period_end)

    # -- visits -------------------------------------------------------------------------

    def _visits(
        self,
        patient_id: int,
        given: str,
        family: str,
        nhs_number: str,
        frailty: float,
        period_start: int,
        period_end: int,
    ) -> None:
        rng = self.rng
        n_visits = rng.choices(VISIT_COUNTS, weights=VISIT_COUNT_WEIGHTS)[0]
        span = period_end - period_start
        admission = period_start + rng.randrange(max(1, span))
        for _ in range(n_visits):
            if admission >= period_end:
                break
            discharge = self._visit(
                patient_id, given, family, nhs_number, frailty, admission, period_end
            )
            if discharge is None:
                break  # still in hospital, or died
            if rng.random() < READMISSION_RATE:
                admission = discharge + rng.randrange(6 * HOUR, 30 * DAY)
            else:
                admission = discharge + rng.randrange(DAY, max(DAY + 1, span))

    def _visit(
        self,
        patient_id: int,
        given: str,
        family: str,
        nhs_number: str,
        frailty: float,
        admission: int,
        now: int,
    ) -> int | None:
        """Write one visit with its children; return the discharge time if discharged alive."""
        rng = self.rng
        visit_id = self._new_id("visits")
        emergency = rng.random() < 0.7
        code, description, severity = rng.choice(
            names.DIAGNOSES if emergency else ELECTIVE_DIAGNOSES
        )
        base = min(1.0, severity * rng.uniform(0.2, 1.0) + 0.15 * frailty * rng.random())
        deteriorating = rng.random() < 0.08 + 0.2 * severity
        died = deteriorating and rng.random() < 0.12 + 0.2 * frailty
        median_hours = 48.0 if emergency else 20.0
        stay = int(min(max(rng.lognormvariate(math.log(median_hours), 1.0), 2.0), 60 * 24) * HOUR)
        planned_discharge = admission + stay
        if planned_discharge >= now:
            discharge: int | None = None
            disposition = None
        else:
            discharge = planned_discharge
            if died:
                disposition = "died"
            else:
                disposition = "transfer" if rng.random() < 0.07 else "home"
        if rng.random() < ORPHAN_VISIT_RATE:
            patient_id = ORPHAN_PATIENT_ID_BASE + visit_id
        if severity > 0.7 and rng.random() < 0.3:
            ward = rng.choice(CRITICAL_CARE_WARDS)
        else:
            ward = rng.choice(EMERGENCY_WARDS if emergency else ELECTIVE_WARDS)
        self._add(
            "visits",
            (
                visit_id,
                patient_id,
                iso_utc(admission),
                iso_utc(discharge) if discharge is not None else None,
                "emergency" if emergency else "elective",
                ward,
                disposition,
            ),
            iso_utc(discharge if discharge is not None else admission),
        )
        end = discharge if discharge is not None else now
        peak = rng.uniform(0.2, 0.8)
        amplitude = rng.uniform(0.3, 1.0) * (1.0 - base)
        fever = rng.random() < 0.8

        def acuity(t: int) -> float:
            f = (t - admission) / stay
            if died:
                return base + (1.0 - base) * f**1.5
            if deteriorating:
                return base + amplitude * max(0.0, 1.0 - abs(f - peak) / max(peak, 1.0 - peak))
            return base * (1.0 - 0.6 * f)

        self._observations(visit_id, admission, end, now, acuity, fever)
        self._labs(visit_id, admission, end, now, acuity)
        self._diagnoses(
            visit_id, admission, end, discharge, now, code, description, given, family, nhs_number
        )
        return discharge if disposition in ("home", "transfer") else None

    def _observations(
        self,
        visit_id: int,
        admission: int,
        end: int,
        now: int,
        acuity: Callable[[int], float],
        fever: bool,
    ) -> None:
        rng = self.rng
        gauss = rng.gauss
        rand = rng.random
        t = admission + rng.randrange(5 * 60, 45 * 60)
        while t < end:
            x = acuity(t)
            rr = reading_or_missing(rand, min(max(round(14 + 16 * x + gauss(0, 2)), 6), 50))
            spo2 = reading_or_missing(rand, min(max(round(98 - 12 * x + gauss(0, 1.5)), 60), 100))
            oxygen = 1 if rand() < 0.9 * x * x else 0
            shift = 2.6 * x if fever else -2.2 * x
            temperature = reading_or_missing(rand, round(36.8 + shift + gauss(0, 0.3), 1))
            sbp = reading_or_missing(rand, min(max(round(128 - 50 * x + gauss(0, 12)), 50), 230))
            hr = reading_or_missing(rand, min(max(round(76 + 60 * x + gauss(0, 8)), 30), 200))
            if x > 0.55 and rand() < (x - 0.55) * 1.8:
                consciousness = rng.choices(
                    REDUCED_CONSCIOUSNESS, weights=REDUCED_CONSCIOUSNESS_WEIGHTS
                )[0]
            else:
                consciousness = "A"
            stamp = iso_utc(t)
            charted = iso_utc(self.known.charted(t, now))
            self._add(
                "observations",
                (
                    self._new_id("observations"),
                    visit_id,
                    stamp,
                    charted,
                    rr,
                    spo2,
                    oxygen,
                    temperature,
                    sbp,
                    hr,
                    reading_or_missing(rand, consciousness),
                ),
                charted,
            )
            t += rng.randrange(3 * HOUR, 5 * HOUR)  # "4-hourly obs", as charted in practice

    def _labs(
        self, visit_id: int, admission: int, end: int, now: int, acuity: Callable[[int], float]
    ) -> None:
        rng = self.rng
        gauss = rng.gauss
        t = admission + rng.randrange(10 * 60, 2 * HOUR)
        panels = 0
        while t < end and panels < 4:
            x = acuity(t)
            stamp = iso_utc(t)
            values = {
                "HB": round(gauss(135 - 25 * x, 14)),
                "WBC": round(max(0.3, gauss(7.5 + 9 * x, 2.0)), 1),
                "CRP": round(math.exp(gauss(math.log(3 + 180 * x), 0.6)), 1),
                "CREAT": round(max(20.0, gauss(80 + 110 * x, 15))),
                "NA": round(gauss(139 - 6 * x, 3)),
                "K": round(max(2.0, gauss(4.3 + 0.8 * x, 0.4)), 1),
            }
            if x > 0.4 or rng.random() < 0.2:
                values["LACTATE"] = round(math.exp(gauss(math.log(1.1 + 5 * x), 0.3)), 1)
            rng.randrange(30 * 60, 3 * HOUR)  # kept: later draws stay as they were
            resulted = iso_utc(self.known.resulted(t, now))
            for code, value in values.items():
                _, unit, low, high = LAB_BY_CODE[code]
                self._add(
                    "lab_results",
                    (
                        self._new_id("lab_results"),
                        visit_id,
                        stamp,
                        resulted,
                        code,
                        float(value),
                        unit,
                        low,
                        high,
                    ),
                    resulted,
                )
            panels += 1
            t += rng.randrange(20 * HOUR, 72 * HOUR)

    def _diagnoses(
        self,
        visit_id: int,
        admission: int,
        end: int,
        discharge: int | None,
        now: int,
        code: str,
        description: str,
        given: str,
        family: str,
        nhs_number: str,
    ) -> None:
        rng = self.rng
        extra = rng.choices((0, 1, 2), weights=(0.55, 0.3, 0.15))[0]
        codes = [(code, description)]
        for _ in range(extra):
            other_code, other_description, _severity = rng.choice(names.DIAGNOSES)
            if other_code != code:
                codes.append((other_code, other_description))
        for dx_code, dx_description in codes:
            recorded = min(admission + rng.randrange(30 * 60, 12 * HOUR), max(admission, end - 1))
            recorded = self.known.coded(recorded, discharge, now)
            if rng.random() < IDENTIFYING_NOTE_RATE:
                template = rng.choice(names.IDENTIFYING_NOTE_TEMPLATES)
            else:
                template = rng.choice(names.CLINICAL_NOTE_TEMPLATES)
            note = template.format(
                code=dx_code,
                description=dx_description,
                given_name=given,
                family_name=family,
                nhs_number=nhs_number,
            )
            stamp = iso_utc(recorded)
            self._add(
                "diagnoses",
                (self._new_id("diagnoses"), visit_id, dx_code, dx_description, stamp, note),
                stamp,
            )
