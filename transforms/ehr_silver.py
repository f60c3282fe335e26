"""Bronze EHR rows to clean, typed, pseudonymised silver rows (pure PySpark).

Each function takes DataFrames and plain arguments and returns DataFrames, so the same
code runs on a local session, on Databricks and in unit tests. Rows that fail
validation are not dropped: they come back as a quarantine DataFrame holding the
source key, the change number and a reason, never the identifying values.

Every table is cleaned the same way (``split_rows``): tombstones are removed, an
ordered list of ``Rule``s gives each row its first failing reason, clean rows are
typed and projected, and the rest are quarantined. Children are linked to their
parent's clean silver rows, so a visit whose patient was quarantined is an orphan,
and so are that visit's observations, labs and diagnoses: nothing reaches silver
without a valid person key.

What leaves bronze: the person key (keyed HMAC of the NHS number), the birth year
(not the date), the postcode district (not the full postcode); names, MRNs and
clinical free text never do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.identifiers import (
    hmac_sha256_column,
    nhs_number_digits_column,
    nhs_number_valid_column,
)

EARLIEST_BIRTH_DATE = date(1900, 1, 1)

QUARANTINE_COLUMNS = ("source_table", "record_key", "change_seq", "reason")

CONSCIOUSNESS_LEVELS = ("A", "C", "V", "P", "U")
"""ACVPU, as charted for NEWS2: alert, new confusion, voice, pain, unresponsive."""

VITAL_SIGN_RANGES: dict[str, tuple[float, float]] = {
    "respiratory_rate": (0, 80),
    "spo2": (0, 100),
    "temperature": (25.0, 45.0),
    "systolic_bp": (0, 300),
    "heart_rate": (0, 300),
}
"""Inclusive bounds outside which a reading is impossible (an entry or unit error, such
as a Fahrenheit temperature), not merely abnormal: abnormal readings are what NEWS2
scores, so they must stay."""

_VITAL_SIGN_LABELS = {
    "respiratory_rate": "respiratory rate",
    "spo2": "SpO2",
    "temperature": "temperature",
    "systolic_bp": "systolic blood pressure",
    "heart_rate": "heart rate",
}

ICD10_CODE = r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$"


@dataclass(frozen=True)
class Split:
    """Rows that passed validation, and the quarantined rest with a reason."""

    clean: DataFrame
    quarantine: DataFrame


@dataclass(frozen=True)
class Rule:
    """Rows for which ``fails`` is true are quarantined with ``reason``; null passes."""

    reason: str
    fails: Column


def parse_timestamp(column: Column) -> Column:
    """ISO 8601 text (or an existing timestamp) to a UTC timestamp; junk becomes null."""
    # "X" reads "Z", "+01" and "+0100"; only "XXX" reads the extended "+01:00" offset.
    return F.coalesce(
        F.try_to_timestamp(column.cast("string"), F.lit("yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]X")),
        F.try_to_timestamp(column.cast("string"), F.lit("yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]XXX")),
        F.try_to_timestamp(column.cast("string"), F.lit("yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]")),
        F.try_to_timestamp(column.cast("string"), F.lit("yyyy-MM-dd HH:mm:ss[.SSSSSS]")),
    )


_POSTCODE = "^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"


def postcode_district(postcode: Column) -> Column:
    """The outward code of a UK postcode ("NW1 2BU" -> "NW1"); null when malformed.

    The inward code (last three characters) narrows a postcode to a few streets, so
    only the district leaves bronze.
    """
    compact = F.upper(F.regexp_replace(postcode, r"\s+", ""))
    outward = F.substring(compact, F.lit(1), F.length(compact) - 3)
    return F.when(compact.rlike(_POSTCODE), outward)


def live_rows(df: DataFrame, deleted_column: str = "is_deleted") -> DataFrame:
    """Drop tombstones: rows the source has deleted are not cleaned or quarantined."""
    return df.where(F.coalesce(F.col(deleted_column).cast("int"), F.lit(0)) == 0)


def split_rows(
    rows: DataFrame,
    *,
    source_table: str,
    key: str,
    rules: Sequence[Rule],
    columns: Sequence[Column],
) -> Split:
    """Give each row its first failing rule's reason and split clean from quarantined.

    Args:
        rows: live rows with every column the rules and ``columns`` use.
        source_table: the table name recorded in quarantine rows.
        key: the column that identifies a row in its source table.
        rules: checked in order; the first that fails names the reason.
        columns: the clean rows' projection.

    Returns:
        Clean rows projected to ``columns``; quarantine rows with ``QUARANTINE_COLUMNS``.
    """
    # A source without key constraints (a replica, a view) can repeat or omit a key:
    # neither copy can be trusted to be the row, so all of them are quarantined.
    copies = F.count(F.lit(1)).over(Window.partitionBy(F.col(key)))
    rules = [
        Rule("primary key is missing", F.col(key).isNull()),
        Rule("duplicate primary key: more than one source row has this key", copies > 1),
        *rules,
    ]
    reason: Column = F.lit(None).cast("string")
    for rule in reversed(rules):
        reason = F.when(F.coalesce(rule.fails, F.lit(False)), F.lit(rule.reason)).otherwise(reason)
    checked = rows.withColumn("_reason", reason)
    clean = checked.where(F.col("_reason").isNull()).select(*columns)
    quarantine = checked.where(F.col("_reason").isNotNull()).select(
        F.lit(source_table).alias("source_table"),
        F.coalesce(F.col(key).cast("string"), F.lit("(missing)")).alias("record_key"),
        F.col("change_seq").cast("long").alias("change_seq"),
        F.col("_reason").alias("reason"),
    )
    return Split(clean=clean, quarantine=quarantine)


def event_time_rules(parsed: Column, *, what: str, as_of: date) -> list[Rule]:
    """A required event time: present, ISO 8601, and not after ``as_of``."""
    return [
        Rule(f"{what} is missing or not ISO 8601", parsed.isNull()),
        Rule(f"{what} is in the future", F.to_date(parsed) > F.lit(as_of)),
    ]


def known_at_rules(
    known: Column, raw: str, event: Column, *, what: str, event_what: str
) -> list[Rule]:
    """An optional known-at time: ISO 8601 when given, and never before the event itself.

    A null one is kept (an older source may not record it): features then treat the
    fact as known at its event time, and the data dictionary says so.
    """
    return [
        Rule(f"{what} is not ISO 8601", F.col(raw).isNotNull() & known.isNull()),
        Rule(f"{what} is before the {event_what}", known < event),
    ]


def with_optional_columns(rows: DataFrame, *names: str) -> DataFrame:
    """Add any of ``names`` the bronze table lacks as nulls (sources older than them)."""
    for name in names:
        if name not in rows.columns:
            rows = rows.withColumn(name, F.lit(None).cast("string"))
    return rows


def link_to_visits(rows: DataFrame, visits: DataFrame) -> DataFrame:
    """Attach each row's ``person_key`` from its clean silver visit (null = orphan)."""
    return rows.join(visits.select("visit_id", "person_key"), on="visit_id", how="left")


def _orphan(what: str) -> Rule:
    return Rule(f"orphan: no valid visit for this {what}", F.col("person_key").isNull())


def clean_patients(patients: DataFrame, *, key: bytes, as_of: date) -> Split:
    """Validate and pseudonymise bronze patients.

    Args:
        patients: bronze ``patients`` rows, tombstones included.
        key: the pseudonymisation key.
        as_of: dates of birth after this day are impossible.

    Returns:
        Clean rows with ``person_key`` (HMAC of the NHS number), ``birth_year``, ``sex``,
        ``postcode_district`` and ``ethnicity``; no NHS number, name, MRN, full date of
        birth or full postcode. Quarantine rows name the reason.
    """
    nhs_digits = nhs_number_digits_column(F.col("nhs_number"))
    birth_date = F.try_to_date(F.col("date_of_birth").cast("string"), "yyyy-MM-dd")
    rules = [
        Rule("NHS number is missing", F.col("nhs_number").isNull()),
        Rule("invalid NHS number", ~nhs_number_valid_column(F.col("nhs_number"))),
        Rule("date of birth is missing or not a date", birth_date.isNull()),
        Rule("date of birth is in the future", birth_date > F.lit(as_of)),
        Rule("date of birth is before 1900", birth_date < F.lit(EARLIEST_BIRTH_DATE)),
    ]
    return split_rows(
        live_rows(patients),
        source_table="patients",
        key="patient_id",
        rules=rules,
        columns=[
            F.col("patient_id").cast("long").alias("patient_id"),
            hmac_sha256_column(nhs_digits, key).alias("person_key"),
            F.year(birth_date).alias("birth_year"),
            F.upper(F.col("sex")).alias("sex"),
            postcode_district(F.col("postcode")).alias("postcode_district"),
            F.col("ethnicity"),
            parse_timestamp(F.col("updated_at")).alias("source_updated_at"),
            F.col("change_seq").cast("long").alias("change_seq"),
        ],
    )


def clean_visits(visits: DataFrame, patients: DataFrame, *, as_of: date) -> Split:
    """Type bronze visits and quarantine impossible or orphaned ones.

    Args:
        visits: bronze ``visits`` rows, tombstones included.
        patients: clean silver patients (only ``patient_id`` and ``person_key`` are used).
        as_of: admissions after the end of this day are impossible.

    Returns:
        Clean visits with ``person_key`` in place of the source patient id's identity,
        and ``length_of_stay_hours`` (null while the patient is still admitted).
    """
    admitted = parse_timestamp(F.col("admission_datetime"))
    discharged = parse_timestamp(F.col("discharge_datetime"))
    people = patients.select("patient_id", "person_key")
    joined = live_rows(visits).join(people, on="patient_id", how="left")
    rules = [
        Rule("admission time is missing or not ISO 8601", admitted.isNull()),
        Rule(
            "discharge time is not ISO 8601",
            F.col("discharge_datetime").isNotNull() & discharged.isNull(),
        ),
        Rule("discharge is before admission", discharged < admitted),
        Rule("admission is in the future", F.to_date(admitted) > F.lit(as_of)),
        Rule("orphan: no valid patient for this visit", F.col("person_key").isNull()),
    ]
    stay_hours = (F.unix_micros(discharged) - F.unix_micros(admitted)) / F.lit(3_600_000_000.0)
    return split_rows(
        joined,
        source_table="visits",
        key="visit_id",
        rules=rules,
        columns=[
            F.col("visit_id").cast("long").alias("visit_id"),
            F.col("patient_id").cast("long").alias("patient_id"),
            F.col("person_key"),
            admitted.alias("admission_datetime"),
            discharged.alias("discharge_datetime"),
            F.col("admission_type"),
            F.col("ward"),
            F.col("discharge_disposition"),
            stay_hours.alias("length_of_stay_hours"),
            F.col("change_seq").cast("long").alias("change_seq"),
        ],
    )


def clean_observations(observations: DataFrame, visits: DataFrame, *, as_of: date) -> Split:
    """Type vital-sign observation sets and quarantine impossible or orphaned ones.

    Missing readings stay null (nobody charted them); impossible ones quarantine the
    whole set, since a set with a misplaced column is not trustworthy elsewhere either.

    Args:
        observations: bronze ``observations`` rows, tombstones included.
        visits: clean silver visits (``visit_id`` and ``person_key`` are used).
        as_of: observations after the end of this day are impossible.

    Returns:
        ``observation_id``, ``visit_id``, ``person_key``, ``observed_at``,
        ``charted_at`` (when the set was entered, so known), the five numeric vitals,
        ``on_supplemental_oxygen`` (boolean), ``consciousness`` (ACVPU)
        and ``change_seq``.
    """
    observations = with_optional_columns(observations, "charted_at")
    observed = parse_timestamp(F.col("observed_at"))
    charted = parse_timestamp(F.col("charted_at"))
    consciousness = F.upper(F.trim(F.col("consciousness")))
    oxygen = F.col("on_supplemental_oxygen").cast("int")
    rules = event_time_rules(observed, what="observation time", as_of=as_of)
    rules += known_at_rules(
        charted, "charted_at", observed, what="charting time", event_what="observation time"
    )
    for column, (low, high) in VITAL_SIGN_RANGES.items():
        value = F.col(column).cast("double")
        rules.append(
            Rule(
                f"{_VITAL_SIGN_LABELS[column]} outside {low:g}-{high:g}",
                (value < low) | (value > high),
            )
        )
    rules += [
        Rule(
            f"consciousness is not one of {', '.join(CONSCIOUSNESS_LEVELS)}",
            ~consciousness.isin(*CONSCIOUSNESS_LEVELS),
        ),
        Rule("supplemental oxygen flag is not 0 or 1", ~oxygen.isin(0, 1)),
        _orphan("observation"),
    ]
    return split_rows(
        link_to_visits(live_rows(observations), visits),
        source_table="observations",
        key="observation_id",
        rules=rules,
        columns=[
            F.col("observation_id").cast("long").alias("observation_id"),
            F.col("visit_id").cast("long").alias("visit_id"),
            F.col("person_key"),
            observed.alias("observed_at"),
            charted.alias("charted_at"),
            F.col("respiratory_rate").cast("long").alias("respiratory_rate"),
            F.col("spo2").cast("long").alias("spo2"),
            (oxygen == 1).alias("on_supplemental_oxygen"),
            F.col("temperature").cast("double").alias("temperature"),
            F.col("systolic_bp").cast("long").alias("systolic_bp"),
            F.col("heart_rate").cast("long").alias("heart_rate"),
            consciousness.alias("consciousness"),
            F.col("change_seq").cast("long").alias("change_seq"),
        ],
    )


def clean_lab_results(lab_results: DataFrame, visits: DataFrame, *, as_of: date) -> Split:
    """Type laboratory results and quarantine impossible or orphaned ones.

    Args:
        lab_results: bronze ``lab_results`` rows, tombstones included.
        visits: clean silver visits (``visit_id`` and ``person_key`` are used).
        as_of: collections after the end of this day are impossible.

    Returns:
        ``lab_result_id``, ``visit_id``, ``person_key``, ``collected_at``,
        ``resulted_at`` (when the result was reported, so known), ``test_code``,
        ``value`` (null while pending), ``unit``, ``reference_low``, ``reference_high``
        and ``change_seq``.
    """
    lab_results = with_optional_columns(lab_results, "resulted_at")
    collected = parse_timestamp(F.col("collected_at"))
    resulted = parse_timestamp(F.col("resulted_at"))
    test_code = F.upper(F.trim(F.col("test_code")))
    low, high = F.col("reference_low").cast("double"), F.col("reference_high").cast("double")
    rules = [
        *event_time_rules(collected, what="collection time", as_of=as_of),
        *known_at_rules(
            resulted, "resulted_at", collected, what="result time", event_what="collection time"
        ),
        Rule("test code is missing", test_code.isNull() | (test_code == "")),
        Rule("lab value is negative", F.col("value").cast("double") < 0),
        Rule("reference range low is above high", low > high),
        _orphan("lab result"),
    ]
    return split_rows(
        link_to_visits(live_rows(lab_results), visits),
        source_table="lab_results",
        key="lab_result_id",
        rules=rules,
        columns=[
            F.col("lab_result_id").cast("long").alias("lab_result_id"),
            F.col("visit_id").cast("long").alias("visit_id"),
            F.col("person_key"),
            collected.alias("collected_at"),
            resulted.alias("resulted_at"),
            test_code.alias("test_code"),
            F.col("value").cast("double").alias("value"),
            F.col("unit"),
            low.alias("reference_low"),
            high.alias("reference_high"),
            F.col("change_seq").cast("long").alias("change_seq"),
        ],
    )


def clean_diagnoses(diagnoses: DataFrame, visits: DataFrame, *, as_of: date) -> Split:
    """Type coded diagnoses, dropping the clinical free text, and quarantine bad ones.

    ``clinical_note`` is free text that can name the patient or quote an NHS number;
    no pattern-matching scrubber is trusted to catch every case, so it never leaves
    bronze.

    Args:
        diagnoses: bronze ``diagnoses`` rows, tombstones included.
        visits: clean silver visits (``visit_id`` and ``person_key`` are used).
        as_of: diagnoses recorded after the end of this day are impossible.

    Returns:
        ``diagnosis_id``, ``visit_id``, ``person_key``, ``icd10_code``, ``description``,
        ``recorded_at`` and ``change_seq``.
    """
    recorded = parse_timestamp(F.col("recorded_at"))
    code = F.upper(F.trim(F.col("icd10_code")))
    rules = [
        *event_time_rules(recorded, what="recording time", as_of=as_of),
        Rule("ICD-10 code is missing or malformed", code.isNull() | ~code.rlike(ICD10_CODE)),
        _orphan("diagnosis"),
    ]
    return split_rows(
        link_to_visits(live_rows(diagnoses), visits),
        source_table="diagnoses",
        key="diagnosis_id",
        rules=rules,
        columns=[
            F.col("diagnosis_id").cast("long").alias("diagnosis_id"),
            F.col("visit_id").cast("long").alias("visit_id"),
            F.col("person_key"),
            code.alias("icd10_code"),
            F.col("description"),
            recorded.alias("recorded_at"),
            F.col("change_seq").cast("long").alias("change_seq"),
        ],
    )
