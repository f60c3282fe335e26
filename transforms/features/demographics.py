"""Patient demographics at each visit's admission, for the feature store (pure PySpark).

Only generalised attributes leave silver: an age band beside the age in whole years
(from the birth year), sex, the postcode district and ethnicity. When two patient
records share a pseudonym (a merged record), the most recently changed one is used,
so a visit never gets two rows.

Those attributes together can single a patient out, so the published table is
generalised to k-anonymity (``FeatureOptions.k_anonymity``, from
``governance.k_anonymity.k``) by :data:`DEMOGRAPHICS_LADDER`, patient by patient,
over the whole population: the table's scope is ``population``.
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
from transforms.features.generalise import (
    LEVEL_COLUMN,
    GeneralisationStep,
    generalise_to_k,
    withhold,
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


QUASI_IDENTIFIERS = ("age_at_admission", "age_band", "sex", "postcode_district", "ethnicity")

DEMOGRAPHICS_LADDER: tuple[GeneralisationStep, ...] = (
    GeneralisationStep("age as its band only", {"age_at_admission": withhold}),
    GeneralisationStep(
        "postcode area (the district's leading letters, e.g. NW)",
        {"postcode_district": lambda c: F.nullif(F.regexp_extract(c, r"^[A-Z]+", 0), F.lit(""))},
    ),
    GeneralisationStep(
        "broad ethnic group (e.g. Asian or Asian British)",
        {"ethnicity": lambda c: F.substring_index(c, " - ", 1)},
    ),
    GeneralisationStep(
        "area and ethnicity withheld", {"postcode_district": withhold, "ethnicity": withhold}
    ),
    GeneralisationStep(
        "every quasi-identifier withheld", {name: withhold for name in QUASI_IDENTIFIERS}
    ),
)
"""Levels 1-5 of ``generalisation_level``; each adds its step to the ones before."""


def build_demographics_features(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """:func:`build_demographics` over the named silver inputs, generalised to k."""
    rows = build_demographics(inputs["visits"], inputs["patients"])
    return generalise_to_k(
        rows,
        k=options.k_anonymity,
        quasi_identifiers=QUASI_IDENTIFIERS,
        ladder=DEMOGRAPHICS_LADDER,
    )


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
        "Age in whole years at admission, from the birth year (may be one year high); "
        "empty where generalised to the band.",
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
        "Outward code of the home postcode (e.g. NW1), or its area (NW) where generalised; "
        "never the full postcode.",
        sources=((_P, "postcode_district"),),
    ),
    FeatureColumn(
        "ethnicity",
        "string",
        "Recorded ethnic group, or its broad group where generalised.",
        sources=((_P, "ethnicity"),),
    ),
    FeatureColumn(
        "admission_type",
        "string",
        "How the patient was admitted (e.g. emergency, elective).",
        sources=(("visits", "admission_type"),),
    ),
    FeatureColumn(
        LEVEL_COLUMN,
        "int",
        "How far this patient's age, sex, area and ethnicity were generalised to keep "
        "every combination shared by k patients: 0 as recorded; "
        + "; ".join(f"{n} {step.description}" for n, step in enumerate(DEMOGRAPHICS_LADDER, 1))
        + " (each level includes the ones before).",
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
    scope="population",
    quasi_identifiers=QUASI_IDENTIFIERS,
)
