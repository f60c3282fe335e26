"""Laboratory result summaries at each horizon (pure PySpark).

For every test on the panel: the latest value collected at or before the horizon, whether
it lay outside its reference range, and how many hours before the horizon it was
collected. Horizons are each lab collection time of the visit (or the configured grid).

Silver holds the collection time only, not when the result was reported; a model that
must not see results before they are reported should add a turnaround allowance to its
event times.
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
from transforms.features.horizons import (
    EPOCH,
    IS_HORIZON,
    build_horizons,
    latest,
    stack_with_events,
    visit_window,
)
from transforms.features.incremental import visit_fingerprints

LAB_TESTS: dict[str, str] = {
    "HB": "haemoglobin",
    "WBC": "white cell count",
    "CRP": "C-reactive protein",
    "CREAT": "creatinine",
    "NA": "sodium",
    "K": "potassium",
    "LACTATE": "lactate",
}


def lab_prefix(code: str) -> str:
    return f"lab_{code.lower()}"


def build_lab_summaries(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """Latest value, abnormal flag and age of each lab test at each horizon.

    Args:
        inputs: silver ``visits`` and ``lab_results`` (``test_code``, ``value``,
            ``reference_low``, ``reference_high``, ``collected_at``).
        options: the horizon choice.

    Returns:
        Keys, ``lab_<test>_latest``, ``lab_<test>_abnormal``, ``lab_<test>_hours_since``
        per test, and ``abnormal_tests`` (how many latest values are abnormal).
    """
    visits, labs = inputs["visits"], inputs["lab_results"]
    horizons = build_horizons(visits, labs, "collected_at", options)
    stacked = stack_with_events(horizons, labs, "collected_at")
    frame = visit_window(None)
    code = F.upper(F.trim(F.col("test_code")))
    picked = []
    for test in LAB_TESTS:
        result = F.struct(
            F.col("value").cast("double").alias("value"),
            F.col("reference_low").cast("double").alias("low"),
            F.col("reference_high").cast("double").alias("high"),
            F.col(EPOCH).alias("at"),
        )
        present = (code == test) & F.col("value").isNotNull()
        picked.append(
            latest(result, F.col("lab_result_id"), present=present).over(frame).alias(test)
        )
    at_horizon = stacked.select(
        "visit_id", "person_key", "horizon_datetime", EPOCH, IS_HORIZON, *picked
    ).where(F.col(IS_HORIZON))
    columns = []
    abnormal_flags = []
    for test in LAB_TESTS:
        prefix = lab_prefix(test)
        value, low, high = (F.col(f"{test}.{f}") for f in ("value", "low", "high"))
        abnormal = F.when(value.isNull(), F.lit(None).cast("boolean")).otherwise(
            F.coalesce(value < low, F.lit(False)) | F.coalesce(value > high, F.lit(False))
        )
        abnormal_flags.append(F.coalesce(abnormal, F.lit(False)).cast("int"))
        columns += [
            value.alias(f"{prefix}_latest"),
            abnormal.alias(f"{prefix}_abnormal"),
            ((F.col(EPOCH) - F.col(f"{test}.at")) / 3600.0).alias(f"{prefix}_hours_since"),
        ]
    return at_horizon.select(
        "visit_id",
        "person_key",
        "horizon_datetime",
        *columns,
        sum(abnormal_flags, F.lit(0)).cast("int").alias("abnormal_tests"),
    )


def fingerprint_labs(inputs: Inputs) -> DataFrame:
    return visit_fingerprints(inputs["visits"], inputs["lab_results"])


def _lab_columns() -> tuple[FeatureColumn, ...]:
    columns = []
    for test, label in LAB_TESTS.items():
        prefix = lab_prefix(test)
        sources = (("lab_results", "test_code"), ("lab_results", "collected_at"))
        columns += [
            FeatureColumn(
                f"{prefix}_latest",
                "double",
                f"Latest {label} ({test}) value collected at or before the horizon.",
                sources=(("lab_results", "value"), *sources),
            ),
            FeatureColumn(
                f"{prefix}_abnormal",
                "boolean",
                f"True when that {label} value lies outside its reference range.",
                sources=(
                    ("lab_results", "value"),
                    ("lab_results", "reference_low"),
                    ("lab_results", "reference_high"),
                    *sources,
                ),
            ),
            FeatureColumn(
                f"{prefix}_hours_since",
                "double",
                f"Hours between that {label} collection and the horizon (in a training set:"
                " and the row's event time).",
                sources=sources,
            ),
        ]
    return tuple(columns)


LAB_COLUMNS: tuple[FeatureColumn, ...] = (
    *key_columns("Time of a lab collection (or a grid point): results as of then."),
    *_lab_columns(),
    FeatureColumn(
        "abnormal_tests",
        "int",
        "How many tests' latest values are outside their reference range.",
        sources=(
            ("lab_results", "value"),
            ("lab_results", "reference_low"),
            ("lab_results", "reference_high"),
        ),
    ),
    VERSION_COLUMN,
)

LAB_SUMMARIES = FeatureTableSpec(
    name="lab_summaries",
    description="Latest value, abnormal flag and age of each lab test at each horizon.",
    inputs=("visits", "lab_results"),
    columns=LAB_COLUMNS,
    build=build_lab_summaries,
    fingerprint=fingerprint_labs,
    horizon="each lab collection time (or the configured grid)",
)
