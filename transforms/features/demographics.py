"""Patient demographics at each visit's admission, for the feature store (pure PySpark).

Only generalised attributes leave silver: an age band beside the age in whole years
(from the birth year), sex, the postcode district and ethnicity. When two patient
records share a pseudonym (a merged record), the most recently changed one is used,
so a visit never gets two rows.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.features.dictionary import (
    VERSION_COLUMN,
    FeatureColumn,
    FeatureOptions,
    FeatureTableSpec,
    Inputs,
    key_columns,
)
from transforms.features.incremental import visit_fingerprints

AGE_BANDS: tuple[tuple[int, int | None, str], ...] = (
    (0, 17, "0-17"),
    (18, 39, "18-39"),
    (40, 59, "40-59"),
    (60, 79, "60-79"),
    (80, None, "80+"),
)


def age_band(age: Column) -> Column:
    """Coarse age band, which researchers may see where an exact age could identify."""
    expr = None
    for low, high, label in AGE_BANDS:
        condition = age >= low if high is None else age.between(low, high)
        expr = F.when(condition, F.lit(label)) if expr is None else expr.when(condition, label)
    assert expr is not None
    return expr


def build_demographics(visits: DataFrame, patients: DataFrame) -> DataFrame:
    """One row per visit at its admission horizon.

    Args:
        visits: clean silver visits (``visit_id``, ``person_key``, ``admission_datetime``,
            ``admission_type``).
        patients: clean silver patients (``person_key``, ``birth_year``, ``sex``,
            ``postcode_district``, ``ethnicity``).

    Returns:
        ``visit_id``, ``person_key``, ``horizon_datetime``, ``age_at_admission`` (whole
        years from the birth year), ``age_band``, ``sex``, ``postcode_district``,
        ``ethnicity``, ``admission_type``.
    """
    people = _one_row_per_person(patients).select(
        "person_key", "birth_year", "sex", "postcode_district", "ethnicity"
    )
    age = F.year("admission_datetime") - F.col("birth_year")
    return (
        visits.join(people, on="person_key", how="inner")
        .select(
            F.col("visit_id"),
            F.col("person_key"),
            F.col("admission_datetime").alias("horizon_datetime"),
            age.cast("int").alias("age_at_admission"),
            age_band(age).alias("age_band"),
            F.col("sex"),
            F.col("postcode_district"),
            F.col("ethnicity"),
            F.col("admission_type"),
        )
        .orderBy("visit_id")
    )


def _one_row_per_person(patients: DataFrame) -> DataFrame:
    if "change_seq" not in patients.columns:
        return patients.dropDuplicates(["person_key"])
    newest = Window.partitionBy("person_key").orderBy(F.col("change_seq").desc_nulls_last())
    return (
        patients.withColumn("_rank", F.row_number().over(newest))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def build_demographics_features(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """:func:`build_demographics` over the named silver inputs."""
    return build_demographics(inputs["visits"], inputs["patients"])


def fingerprint_demographics(inputs: Inputs) -> DataFrame:
    """A visit changes with its own row and with its patient's row."""
    visits, patients = inputs["visits"], inputs["patients"]
    patient_rows = visits.select("visit_id", "person_key").join(
        patients.select("person_key", "change_seq"), on="person_key"
    )
    return visit_fingerprints(visits, patient_rows)


_P = "patients"
DEMOGRAPHICS_COLUMNS: tuple[FeatureColumn, ...] = (
    *key_columns("Admission time: demographics as recorded for the visit."),
    FeatureColumn(
        "age_at_admission",
        "int",
        "Age in whole years at admission, from the birth year (may be one year high).",
        sources=((_P, "birth_year"), ("visits", "admission_datetime")),
    ),
    FeatureColumn(
        "age_band",
        "string",
        "Age band at admission: 0-17, 18-39, 40-59, 60-79, 80+.",
        sources=((_P, "birth_year"), ("visits", "admission_datetime")),
    ),
    FeatureColumn("sex", "string", "Recorded sex: F, M or U.", sources=((_P, "sex"),)),
    FeatureColumn(
        "postcode_district",
        "string",
        "Outward code of the home postcode (e.g. NW1); never the full postcode.",
        sources=((_P, "postcode_district"),),
    ),
    FeatureColumn("ethnicity", "string", "Recorded ethnic group.", sources=((_P, "ethnicity"),)),
    FeatureColumn(
        "admission_type",
        "string",
        "How the patient was admitted (e.g. emergency, elective).",
        sources=(("visits", "admission_type"),),
    ),
    VERSION_COLUMN,
)

DEMOGRAPHICS = FeatureTableSpec(
    name="patient_demographics",
    description="Age band, sex, postcode district and ethnicity of the patient at each "
    "visit's admission.",
    inputs=("visits", "patients"),
    columns=DEMOGRAPHICS_COLUMNS,
    build=build_demographics_features,
    fingerprint=fingerprint_demographics,
    horizon="admission (one row per visit)",
    quasi_identifiers=("age_at_admission", "sex", "postcode_district", "ethnicity"),
)
