"""Laboratory result summaries at each horizon (pure PySpark).

For every test on the panel: the latest value collected at or before the horizon, whether
it lay outside its reference range, and how many hours before the horizon it was
collected. Horizons are each lab collection time of the visit (or the configured grid).

A result is known once reported (``resulted_at``), hours after its sample was collected,
so each horizon has a row as known at itself and one more at each later report of a
sample collected by then (``known_at``); a result without a report time counts as known
at collection.
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
    HORIZON_EPOCH,
    REVISION_KEYS,
    build_horizons,
    facts_as_known,
    latest_fact,
    revisions,
    with_known_at,
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
    """Latest value, abnormal flag and age of each lab test at each horizon, as known.

    Args:
        inputs: silver ``visits`` and ``lab_results`` (``test_code``, ``value``,
            ``reference_low``, ``reference_high``, ``collected_at``, ``resulted_at``).
        options: the horizon choice.

    Returns:
        Keys (with ``known_at``), ``lab_<test>_latest``, ``lab_<test>_abnormal``,
        ``lab_<test>_hours_since`` per test, and ``abnormal_tests`` (how many latest
        values are abnormal): at each horizon, from the results reported by ``known_at``.
    """
    visits, labs = inputs["visits"], inputs["lab_results"]
    horizons = build_horizons(visits, labs, "collected_at", options)
    known = "resulted_at" if "resulted_at" in labs.columns else None
    events = with_known_at(labs, "collected_at", known)
    facts = facts_as_known(revisions(horizons, events, seconds=None), events, seconds=None)
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
        picked.append(latest_fact(result, F.col("lab_result_id"), present=present).alias(test))
    at_horizon = facts.groupBy(*REVISION_KEYS, HORIZON_EPOCH).agg(*picked)
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
            ((F.col(HORIZON_EPOCH) - F.col(f"{test}.at")) / 3600.0).alias(f"{prefix}_hours_since"),
        ]
    return at_horizon.select(
        *REVISION_KEYS,
        *columns,
        sum(abnormal_flags, F.lit(0)).cast("int").alias("abnormal_tests"),
    )


def fingerprint_labs(inputs: Inputs) -> DataFrame:
    return visit_fingerprints(inputs["visits"], inputs["lab_results"])


def _lab_columns() -> tuple[FeatureColumn, ...]:
    columns = []
    for test, label in LAB_TESTS.items():
        prefix = lab_prefix(test)
        sources = (
            ("lab_results", "test_code"),
            ("lab_results", "collected_at"),
            ("lab_results", "resulted_at"),
        )
        columns += [
            FeatureColumn(
                f"{prefix}_latest",
                "double",
                f"Latest {label} ({test}) value collected at or before the horizon and "
                "reported by known_at.",
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
    *key_columns(
        "Time of a lab collection (or a grid point): results collected by then.",
        "When this row's results were all reported: the horizon itself, or a later report "
        "of a sample collected by the horizon.",
    ),
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
