"""Bronze EHR rows to clean, typed, pseudonymised silver rows (pure PySpark).

Each function takes DataFrames and plain arguments and returns DataFrames, so the same
code runs on a local session, on Databricks and in unit tests. Rows that fail
validation are not dropped: they come back as a quarantine DataFrame holding the
source key, the change number and a reason, never the identifying values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.identifiers import hmac_sha256_column, nhs_number_valid_column

EARLIEST_BIRTH_DATE = date(1900, 1, 1)

QUARANTINE_COLUMNS = ("source_table", "record_key", "change_seq", "reason")


@dataclass(frozen=True)
class Split:
    """Rows that passed validation, and the quarantined rest with a reason."""

    clean: DataFrame
    quarantine: DataFrame


def parse_timestamp(column: Column) -> Column:
    """ISO 8601 text (or an existing timestamp) to a UTC timestamp; junk becomes null."""
    return F.coalesce(
        F.try_to_timestamp(column.cast("string"), F.lit("yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]X")),
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


def _quarantine(df: DataFrame, *, source_table: str, key: str, reason: Column) -> DataFrame:
    return df.select(
        F.lit(source_table).alias("source_table"),
        F.col(key).cast("string").alias("record_key"),
        F.col("change_seq").cast("long").alias("change_seq"),
        reason.alias("reason"),
    )


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
    live = patients.where(F.coalesce(F.col("is_deleted"), F.lit(0)) == 0)
    nhs_digits = F.regexp_replace(F.col("nhs_number"), "[ -]", "")
    birth_date = F.try_to_date(F.col("date_of_birth").cast("string"), "yyyy-MM-dd")
    reason = (
        F.when(F.col("nhs_number").isNull(), F.lit("NHS number is missing"))
        .when(~nhs_number_valid_column(F.col("nhs_number")), F.lit("invalid NHS number"))
        .when(birth_date.isNull(), F.lit("date of birth is missing or not a date"))
        .when(birth_date > F.lit(as_of), F.lit("date of birth is in the future"))
        .when(birth_date < F.lit(EARLIEST_BIRTH_DATE), F.lit("date of birth is before 1900"))
    )
    checked = live.withColumn("_reason", reason)
    clean = checked.where(F.col("_reason").isNull()).select(
        F.col("patient_id").cast("long").alias("patient_id"),
        hmac_sha256_column(nhs_digits, key).alias("person_key"),
        F.year(birth_date).alias("birth_year"),
        F.upper(F.col("sex")).alias("sex"),
        postcode_district(F.col("postcode")).alias("postcode_district"),
        F.col("ethnicity"),
        parse_timestamp(F.col("updated_at")).alias("source_updated_at"),
        F.col("change_seq").cast("long").alias("change_seq"),
    )
    quarantine = _quarantine(
        checked.where(F.col("_reason").isNotNull()),
        source_table="patients",
        key="patient_id",
        reason=F.col("_reason"),
    )
    return Split(clean=clean, quarantine=quarantine)


def clean_visits(visits: DataFrame, patients: DataFrame, *, as_of: date) -> Split:
    """Type bronze visits and quarantine impossible or orphaned ones.

    Args:
        visits: bronze ``visits`` rows, tombstones included.
        patients: clean silver patients (only ``patient_id`` and ``person_key`` are used).
        as_of: admissions after the end of this day are impossible.

    Returns:
        Clean visits with ``person_key`` in place of the source patient id's identity.
    """
    live = visits.where(F.coalesce(F.col("is_deleted"), F.lit(0)) == 0)
    admitted = parse_timestamp(F.col("admission_datetime"))
    discharged = parse_timestamp(F.col("discharge_datetime"))
    people = patients.select("patient_id", "person_key")
    joined = live.join(people, on="patient_id", how="left")
    reason = (
        F.when(admitted.isNull(), F.lit("admission time is missing or not ISO 8601"))
        .when(
            F.col("discharge_datetime").isNotNull() & discharged.isNull(),
            F.lit("discharge time is not ISO 8601"),
        )
        .when(discharged < admitted, F.lit("discharge is before admission"))
        .when(F.to_date(admitted) > F.lit(as_of), F.lit("admission is in the future"))
        .when(F.col("person_key").isNull(), F.lit("orphan: no valid patient for this visit"))
    )
    checked = joined.withColumn("_reason", reason)
    clean = checked.where(F.col("_reason").isNull()).select(
        F.col("visit_id").cast("long").alias("visit_id"),
        F.col("patient_id").cast("long").alias("patient_id"),
        F.col("person_key"),
        admitted.alias("admission_datetime"),
        discharged.alias("discharge_datetime"),
        F.col("admission_type"),
        F.col("ward"),
        F.col("discharge_disposition"),
        F.col("change_seq").cast("long").alias("change_seq"),
    )
    quarantine = _quarantine(
        checked.where(F.col("_reason").isNotNull()),
        source_table="visits",
        key="visit_id",
        reason=F.col("_reason"),
    )
    return Split(clean=clean, quarantine=quarantine)
