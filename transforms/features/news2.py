"""NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).

Each parameter of an observation set is scored 0-3 from the published chart and the
sub-scores are added. Clinical risk follows the chart's thresholds: an aggregate of
7 or more is high, 5-6 medium, a score of 3 in any single parameter ("red score")
with an aggregate of 0-4 low-medium, otherwise low.

Reading the chart's bands for measured values: respiration rate, SpO2, systolic
pressure and pulse are charted in whole numbers, so they are rounded to the nearest
whole number first (half away from zero); temperature is charted to one decimal and
rounded to one decimal. Each band is then "at most the chart's upper bound". SpO2
uses scale 1 unless scale 2 is chosen (for patients with hypercapnic respiratory
failure, on clinical decision; the pipeline applies one scale to every row and
records which).

At each horizon, the score is that of the latest observation set taken at or before
it among those charted by ``known_at`` (a row as known at the horizon, and one more at
each later charting of an earlier set). NEWS2 needs all seven parameters: when any is
missing the aggregate and the risk band are null (the sub-scores that can be scored are kept, and
``news2_missing_parameters`` says how many are absent). No value is carried forward
from an earlier set, as the chart does not allow it.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
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
    REVISION_KEYS,
    build_horizons,
    facts_as_known,
    latest_fact,
    revisions,
    with_known_at,
)
from transforms.features.incremental import visit_fingerprints

RISK_LOW = "low"
RISK_LOW_MEDIUM = "low-medium"
RISK_MEDIUM = "medium"
RISK_HIGH = "high"
MEDIUM_FLOOR = 5  # the lowest aggregate score of the medium band

SUBSCORES: tuple[str, ...] = (
    "respiration_rate_score",
    "spo2_score",
    "air_or_oxygen_score",
    "systolic_bp_score",
    "pulse_score",
    "consciousness_score",
    "temperature_score",
)
OBSERVATION_INPUTS: tuple[str, ...] = (
    "respiratory_rate",
    "spo2",
    "on_supplemental_oxygen",
    "systolic_bp",
    "heart_rate",
    "consciousness",
    "temperature",
)


def _banded(value: Column, bands: tuple[tuple[float, int], ...], above: int) -> Column:
    """Score from ``(upper bound inclusive, score)`` bands, ``above`` past the last."""
    expr = F.when(value.isNull(), F.lit(None).cast("int"))
    for upper, score in bands:
        expr = expr.when(value <= upper, F.lit(score))
    return expr.otherwise(F.lit(above)).cast("int")


def _whole(value: Column) -> Column:
    return F.round(value.cast("double"), 0)


def respiration_rate_score(rate: Column) -> Column:
    """<=8: 3, 9-11: 1, 12-20: 0, 21-24: 2, >=25: 3 (breaths per minute)."""
    return _banded(_whole(rate), ((8, 3), (11, 1), (20, 0), (24, 2)), 3)


def spo2_scale1_score(spo2: Column) -> Column:
    """Scale 1: <=91: 3, 92-93: 2, 94-95: 1, >=96: 0 (%)."""
    return _banded(_whole(spo2), ((91, 3), (93, 2), (95, 1)), 0)


def spo2_scale2_score(spo2: Column, on_oxygen: Column) -> Column:
    """Scale 2: <=83: 3, 84-85: 2, 86-87: 1, 88-92 (or >=93 on air): 0; on oxygen
    93-94: 1, 95-96: 2, >=97: 3."""
    value = _whole(spo2)
    on_oxygen_score = _banded(value, ((94, 1), (96, 2)), 3)
    return (
        F.when(value.isNull(), F.lit(None).cast("int"))
        .when(value <= 92, _banded(value, ((83, 3), (85, 2), (87, 1)), 0))
        .when(on_oxygen.isNull(), F.lit(None).cast("int"))
        .when(on_oxygen, on_oxygen_score)
        .otherwise(F.lit(0))
        .cast("int")
    )


def air_or_oxygen_score(on_oxygen: Column) -> Column:
    """Supplemental oxygen: 2, air: 0."""
    return F.when(on_oxygen.isNull(), F.lit(None).cast("int")).when(on_oxygen, 2).otherwise(0)


def systolic_bp_score(systolic: Column) -> Column:
    """<=90: 3, 91-100: 2, 101-110: 1, 111-219: 0, >=220: 3 (mmHg)."""
    return _banded(_whole(systolic), ((90, 3), (100, 2), (110, 1), (219, 0)), 3)


def pulse_score(pulse: Column) -> Column:
    """<=40: 3, 41-50: 1, 51-90: 0, 91-110: 1, 111-130: 2, >=131: 3 (per minute)."""
    return _banded(_whole(pulse), ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), 3)


def consciousness_score(acvpu: Column) -> Column:
    """Alert: 0; new Confusion, Voice, Pain or Unresponsive: 3; anything else: null."""
    level = F.upper(F.trim(acvpu))
    return (
        F.when(level == "A", F.lit(0))
        .when(level.isin("C", "V", "P", "U"), F.lit(3))
        .otherwise(F.lit(None))
        .cast("int")
    )


def temperature_score(celsius: Column) -> Column:
    """<=35.0: 3, 35.1-36.0: 1, 36.1-38.0: 0, 38.1-39.0: 1, >=39.1: 2 (degrees C)."""
    value = F.round(celsius.cast("double"), 1)
    return _banded(value, ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)), 2)


def clinical_risk(total: Column, any_red: Column) -> Column:
    """The chart's clinical-risk band for an aggregate score (null when incomplete)."""
    return (
        F.when(total.isNull(), F.lit(None).cast("string"))
        .when(total >= 7, F.lit(RISK_HIGH))
        .when(total >= MEDIUM_FLOOR, F.lit(RISK_MEDIUM))
        .when(any_red, F.lit(RISK_LOW_MEDIUM))
        .otherwise(F.lit(RISK_LOW))
    )


def score_observations(observations: DataFrame, *, spo2_scale: int = 1) -> DataFrame:
    """Add the NEWS2 sub-scores, aggregate and risk band to each observation set.

    Args:
        observations: rows with ``respiratory_rate``, ``spo2``,
            ``on_supplemental_oxygen`` (boolean), ``systolic_bp``, ``heart_rate``,
            ``consciousness`` (A/C/V/P/U) and ``temperature``.
        spo2_scale: 1, or 2 for patients with hypercapnic respiratory failure.

    Returns:
        The input columns plus the seven sub-scores, ``spo2_scale``,
        ``news2_missing_parameters``, ``news2_any_red``, ``news2_total`` and
        ``clinical_risk``.

    Raises:
        ValueError: for a scale other than 1 or 2.
    """
    if spo2_scale not in (1, 2):
        raise ValueError(f"spo2_scale must be 1 or 2, not {spo2_scale}")
    oxygen = F.col("on_supplemental_oxygen").cast("boolean")
    spo2 = (
        spo2_scale1_score(F.col("spo2"))
        if spo2_scale == 1
        else spo2_scale2_score(F.col("spo2"), oxygen)
    )
    scored = observations.select(
        "*",
        respiration_rate_score(F.col("respiratory_rate")).alias("respiration_rate_score"),
        spo2.alias("spo2_score"),
        F.lit(spo2_scale).alias("spo2_scale"),
        air_or_oxygen_score(oxygen).alias("air_or_oxygen_score"),
        systolic_bp_score(F.col("systolic_bp")).alias("systolic_bp_score"),
        pulse_score(F.col("heart_rate")).alias("pulse_score"),
        consciousness_score(F.col("consciousness")).alias("consciousness_score"),
        temperature_score(F.col("temperature")).alias("temperature_score"),
    )
    missing = sum((F.col(s).isNull().cast("int") for s in SUBSCORES), F.lit(0))
    present = sum((F.coalesce(F.col(s), F.lit(0)) for s in SUBSCORES), F.lit(0))
    total = F.when(missing == 0, present)
    # A missing parameter can only add to the score: what the present ones sum to is a
    # floor, and a floor of 5 or more is already the medium or high band.
    partial = F.when(missing < len(SUBSCORES), present)
    any_red = F.greatest(*(F.coalesce(F.col(s), F.lit(0)) for s in SUBSCORES)) >= 3
    return (
        scored.withColumn("news2_missing_parameters", missing.cast("int"))
        .withColumn("news2_any_red", any_red)
        .withColumn("news2_total", total.cast("int"))
        .withColumn("news2_partial_total", partial.cast("int"))
        .withColumn(
            "news2_partial_medium_or_high", F.coalesce(partial >= MEDIUM_FLOOR, F.lit(False))
        )
        .withColumn("clinical_risk", clinical_risk(F.col("news2_total"), F.col("news2_any_red")))
    )


def build_news2(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """NEWS2 at each horizon, from the latest observation set at or before it, as charted.

    Args:
        inputs: silver ``visits`` and ``observations``.
        options: the SpO2 scale and the horizon choice.

    Returns:
        Keys (with ``known_at``), ``observed_at`` of the set scored, the sub-scores,
        aggregate and band.
    """
    visits, observations = inputs["visits"], inputs["observations"]
    horizons = build_horizons(visits, observations, "observed_at", options)
    known = "charted_at" if "charted_at" in observations.columns else None
    events = with_known_at(observations, "observed_at", known)
    facts = facts_as_known(revisions(horizons, events, seconds=None), events, seconds=None)
    observation_set = F.struct(F.col("observed_at"), *(F.col(c) for c in OBSERVATION_INPUTS))
    chosen = latest_fact(
        observation_set, F.col("observation_id"), present=F.col("observation_id").isNotNull()
    )
    at_horizon = facts.groupBy(*REVISION_KEYS).agg(chosen.alias("obs"))
    latest_set = at_horizon.select(
        *REVISION_KEYS,
        *(F.col(f"obs.{c}").alias(c) for c in ("observed_at", *OBSERVATION_INPUTS)),
    )
    return score_observations(latest_set, spo2_scale=options.spo2_scale)


def fingerprint_news2(inputs: Inputs) -> DataFrame:
    return visit_fingerprints(inputs["visits"], inputs["observations"])


_OBS = "observations"
NEWS2_COLUMNS: tuple[FeatureColumn, ...] = (
    *key_columns(
        "Time an observation set was taken (or a grid point): the score as of then.",
        "When the sets this row could score were all charted: the horizon itself, or a "
        "later charting of a set taken by the horizon.",
    ),
    FeatureColumn(
        "observed_at",
        "timestamp",
        "When the observation set scored here was taken (the latest at or before the "
        "horizon charted by known_at).",
        sources=((_OBS, "observed_at"),),
    ),
    FeatureColumn(
        "respiration_rate_score",
        "int",
        "NEWS2 respiration rate sub-score: <=8: 3, 9-11: 1, 12-20: 0, 21-24: 2, >=25: 3.",
        sources=((_OBS, "respiratory_rate"),),
    ),
    FeatureColumn(
        "spo2_score",
        "int",
        "NEWS2 SpO2 sub-score on the scale in spo2_scale (scale 2 also reads oxygen use).",
        sources=((_OBS, "spo2"), (_OBS, "on_supplemental_oxygen")),
    ),
    FeatureColumn("spo2_scale", "int", "SpO2 scale used: 1, or 2 for hypercapnic failure."),
    FeatureColumn(
        "air_or_oxygen_score",
        "int",
        "NEWS2 air or oxygen sub-score: supplemental oxygen 2, air 0.",
        sources=((_OBS, "on_supplemental_oxygen"),),
    ),
    FeatureColumn(
        "systolic_bp_score",
        "int",
        "NEWS2 systolic blood pressure sub-score: <=90: 3, 91-100: 2, 101-110: 1, "
        "111-219: 0, >=220: 3.",
        sources=((_OBS, "systolic_bp"),),
    ),
    FeatureColumn(
        "pulse_score",
        "int",
        "NEWS2 pulse sub-score: <=40: 3, 41-50: 1, 51-90: 0, 91-110: 1, 111-130: 2, >=131: 3.",
        sources=((_OBS, "heart_rate"),),
    ),
    FeatureColumn(
        "consciousness_score",
        "int",
        "NEWS2 consciousness sub-score: alert 0; new confusion, voice, pain or unresponsive 3.",
        sources=((_OBS, "consciousness"),),
    ),
    FeatureColumn(
        "temperature_score",
        "int",
        "NEWS2 temperature sub-score: <=35.0: 3, 35.1-36.0: 1, 36.1-38.0: 0, "
        "38.1-39.0: 1, >=39.1: 2.",
        sources=((_OBS, "temperature"),),
    ),
    FeatureColumn(
        "news2_missing_parameters",
        "int",
        "How many of the seven NEWS2 parameters the observation set lacks (0 = complete).",
        sources=tuple((_OBS, c) for c in OBSERVATION_INPUTS),
    ),
    FeatureColumn(
        "news2_any_red",
        "boolean",
        "True when any single parameter scores 3 (a 'red score').",
        sources=tuple((_OBS, c) for c in OBSERVATION_INPUTS),
    ),
    FeatureColumn(
        "news2_total",
        "int",
        "NEWS2 aggregate score (0-20); null when any parameter is missing.",
        sources=tuple((_OBS, c) for c in OBSERVATION_INPUTS),
    ),
    FeatureColumn(
        "news2_partial_total",
        "int",
        "Sum of the sub-scores of the parameters charted (0-20): news2_total when complete, "
        "else a floor under it, since a missing parameter can only add; null when none was.",
        sources=tuple((_OBS, c) for c in OBSERVATION_INPUTS),
    ),
    FeatureColumn(
        "news2_partial_medium_or_high",
        "boolean",
        "True when news2_partial_total is 5 or more: the set is at least medium risk even "
        "with parameters missing (news2_total and clinical_risk stay null then).",
        sources=tuple((_OBS, c) for c in OBSERVATION_INPUTS),
    ),
    FeatureColumn(
        "clinical_risk",
        "string",
        "RCP clinical risk: high (>=7), medium (5-6), low-medium (single red 3, total <=4), "
        "low; null when incomplete.",
        sources=tuple((_OBS, c) for c in OBSERVATION_INPUTS),
    ),
    VERSION_COLUMN,
)

NEWS2 = FeatureTableSpec(
    name="news2",
    description="NEWS2 early-warning score (RCP 2017) with its sub-scores at each horizon.",
    inputs=("visits", "observations"),
    columns=NEWS2_COLUMNS,
    build=build_news2,
    fingerprint=fingerprint_news2,
    horizon="each charted observation set (or the configured grid)",
)
