"""Patient demographics at each visit's admission, for the feature store (pure PySpark)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

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
    people = patients.select("person_key", "birth_year", "sex", "postcode_district", "ethnicity")
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
