"""Coded diagnoses of each visit, as known when each was recorded (pure PySpark).

One row per ICD-10 code of a visit: the visit's admission is its horizon (the code
describes the visit) and ``recorded_at`` its known-at time, which for a code added by
clinical coders from the discharge summary is days after discharge. Codes and times
only: the source's description and clinical note are free text and stay behind.
This is an event table, read through code lists (cohorts, ``codelist:`` features),
not by the latest-horizon join.
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
from transforms.features.horizons import KNOWN_AT
from transforms.features.incremental import visit_fingerprints

CODE_SYSTEM = "icd10"
DIAGNOSIS_KEYS: tuple[str, ...] = ("visit_id", "horizon_datetime", KNOWN_AT, "icd10_code")


def build_diagnoses(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """Each distinct (visit, code, recording time), with the visit's admission and discharge.

    Args:
        inputs: silver ``visits`` and ``diagnoses`` (``icd10_code``, ``recorded_at``).
        options: unused; codes do not depend on the horizon choice.

    Returns:
        Keys, ``icd10_code``, ``code_system`` and ``coded_after_discharge``.
    """
    visits = inputs["visits"].select(
        "visit_id", "person_key", "admission_datetime", "discharge_datetime"
    )
    coded = inputs["diagnoses"].where(
        F.col("icd10_code").isNotNull() & F.col("recorded_at").isNotNull()
    )
    return (
        coded.select("visit_id", "icd10_code", "recorded_at")
        .join(visits, on="visit_id", how="inner")
        .where(F.col("admission_datetime").isNotNull())
        .select(
            "visit_id",
            "person_key",
            F.col("admission_datetime").alias("horizon_datetime"),
            F.col("recorded_at").alias(KNOWN_AT),
            "icd10_code",
            F.lit(CODE_SYSTEM).alias("code_system"),
            F.coalesce(F.col("recorded_at") > F.col("discharge_datetime"), F.lit(False)).alias(
                "coded_after_discharge"
            ),
        )
        .distinct()
    )


def fingerprint_diagnoses(inputs: Inputs) -> DataFrame:
    return visit_fingerprints(inputs["visits"], inputs["diagnoses"])


_D = "diagnoses"
DIAGNOSES = FeatureTableSpec(
    name="diagnoses",
    description="Coded diagnoses (ICD-10) of each visit with when each was recorded; "
    "read through code lists.",
    inputs=("visits", "diagnoses"),
    columns=(
        *key_columns(
            "The visit's admission: the diagnosis describes the visit.",
            "When the code was recorded, so known: on the ward, or by clinical coders "
            "after discharge.",
        ),
        FeatureColumn(
            "icd10_code",
            "string",
            "ICD-10 code as recorded (upper case, with its dot), e.g. A41.9.",
            "key",
            ((_D, "icd10_code"),),
        ),
        FeatureColumn("code_system", "string", "Coding system of the code: icd10."),
        FeatureColumn(
            "coded_after_discharge",
            "boolean",
            "True when the code was recorded after the visit's discharge.",
            sources=((_D, "recorded_at"), ("visits", "discharge_datetime")),
        ),
        VERSION_COLUMN,
    ),
    build=build_diagnoses,
    fingerprint=fingerprint_diagnoses,
    horizon="the visit's admission; known_at is when the code was recorded",
    keys=DIAGNOSIS_KEYS,
    kind="events",
)
