"""Visit outcomes as training labels: length of stay, in-hospital death, readmission.

Labels describe what happened after the horizon, by design: they are the targets a
model learns, never inputs to it. The row's horizon is the admission, so an as-of
join at any moment of the stay finds the visit's label.

Definitions:
* length of stay: hours from admission to discharge; null while still admitted.
* in-hospital death: discharge disposition "died"; null while still admitted.
* 30-day readmission: another visit of the same patient admitted after this visit's
  discharge and within 30 days of it; null while still admitted and for deaths. A
  recent discharge is false until a readmission arrives (no censoring date is
  applied, as none is known without reading the clock); when it arrives, the
  changelog load recomputes every visit of that patient.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.features.dictionary import (
    VERSION_COLUMN,
    FeatureColumn,
    FeatureOptions,
    FeatureTableSpec,
    Inputs,
    key_columns,
)
from transforms.features.incremental import person_fingerprints

READMISSION_DAYS = 30
DIED = "died"


def build_outcomes(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """One row of labels per visit, at its admission horizon.

    Args:
        inputs: silver ``visits`` (``visit_id``, ``person_key``, ``admission_datetime``,
            ``discharge_datetime``, ``discharge_disposition``).
        options: unused; the labels do not depend on the horizon choice.

    Returns:
        Keys and the label columns described in the module docstring.
    """
    visits = inputs["visits"].where(F.col("admission_datetime").isNotNull())
    this = visits.select(
        "visit_id",
        "person_key",
        "admission_datetime",
        "discharge_datetime",
        F.lower(F.trim(F.col("discharge_disposition"))).alias("discharge_disposition"),
    )
    later = visits.select(
        F.col("visit_id").alias("later_visit_id"),
        F.col("person_key").alias("later_person_key"),
        F.col("admission_datetime").alias("later_admission"),
    )
    window_end = F.col("discharge_datetime") + F.expr(f"INTERVAL {READMISSION_DAYS} DAYS")
    readmissions = (
        this.join(
            later,
            (F.col("person_key") == F.col("later_person_key"))
            & (F.col("visit_id") != F.col("later_visit_id"))
            & (F.col("later_admission") > F.col("discharge_datetime"))
            & (F.col("later_admission") <= window_end),
            how="inner",
        )
        .groupBy("visit_id")
        .agg(F.min("later_admission").alias("next_admission"))
    )
    discharged = F.col("discharge_datetime").isNotNull()
    died = F.col("discharge_disposition") == DIED
    hours = (
        F.unix_seconds(F.col("discharge_datetime")) - F.unix_seconds(F.col("admission_datetime"))
    ) / 3600.0
    return this.join(readmissions, on="visit_id", how="left").select(
        "visit_id",
        "person_key",
        F.col("admission_datetime").alias("horizon_datetime"),
        "admission_datetime",
        "discharge_datetime",
        "discharge_disposition",
        F.when(discharged, hours).alias("length_of_stay_hours"),
        F.when(discharged, F.coalesce(died, F.lit(False))).alias("in_hospital_death"),
        F.when(
            discharged & ~F.coalesce(died, F.lit(False)), F.col("next_admission").isNotNull()
        ).alias("readmitted_30d"),
        F.when(
            F.col("next_admission").isNotNull(),
            (F.unix_seconds(F.col("next_admission")) - F.unix_seconds(F.col("discharge_datetime")))
            / 86400.0,
        ).alias("days_to_readmission"),
    )


def fingerprint_outcomes(inputs: Inputs) -> DataFrame:
    return person_fingerprints(inputs["visits"])


_V = "visits"
OUTCOME_COLUMNS: tuple[FeatureColumn, ...] = (
    *key_columns("Admission time: labels apply to the whole visit (targets, never inputs)."),
    FeatureColumn(
        "admission_datetime",
        "timestamp",
        "When the visit began.",
        sources=((_V, "admission_datetime"),),
    ),
    FeatureColumn(
        "discharge_datetime",
        "timestamp",
        "When the visit ended; null while still admitted.",
        "label",
        ((_V, "discharge_datetime"),),
    ),
    FeatureColumn(
        "discharge_disposition",
        "string",
        "How the visit ended: home, transfer or died; null while still admitted.",
        "label",
        ((_V, "discharge_disposition"),),
    ),
    FeatureColumn(
        "length_of_stay_hours",
        "double",
        "Hours from admission to discharge; null while still admitted.",
        "label",
        ((_V, "admission_datetime"), (_V, "discharge_datetime")),
    ),
    FeatureColumn(
        "in_hospital_death",
        "boolean",
        "True when the patient died in hospital on this visit; null while still admitted.",
        "label",
        ((_V, "discharge_disposition"), (_V, "discharge_datetime")),
    ),
    FeatureColumn(
        "readmitted_30d",
        "boolean",
        "True when the patient was admitted again within 30 days after discharge; null "
        "while still admitted or after an in-hospital death.",
        "label",
        ((_V, "person_key"), (_V, "admission_datetime"), (_V, "discharge_datetime")),
    ),
    FeatureColumn(
        "days_to_readmission",
        "double",
        "Days from discharge to the next admission when it came within 30 days, else null.",
        "label",
        ((_V, "person_key"), (_V, "admission_datetime"), (_V, "discharge_datetime")),
    ),
    VERSION_COLUMN,
)

OUTCOMES = FeatureTableSpec(
    name="outcomes",
    description="Visit outcomes as labels: length of stay, in-hospital death and "
    "30-day readmission.",
    inputs=("visits",),
    columns=OUTCOME_COLUMNS,
    build=build_outcomes,
    fingerprint=fingerprint_outcomes,
    scope="person",
    horizon="admission (one row per visit)",
)
