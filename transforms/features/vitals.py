"""Vital-sign aggregates over rolling windows at each horizon (pure PySpark).

For each vital sign and each window (4 h and 24 h) the table holds the last, minimum,
maximum and mean charted value in ``(horizon - window, horizon]``: range-based window
frames on epoch seconds, so a reading exactly at the horizon counts and a reading
exactly one window-length earlier has just left. Missing readings are ignored; a
window with no reading gives nulls (and a count of 0).

A set is known once charted (``charted_at``; usually as it is taken, sometimes later
from paper), so a horizon has a row as known at itself and one more at each later
charting of a set in its 24 h window (``known_at``).
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

VITALS: dict[str, tuple[str, str]] = {
    "respiratory_rate": ("respiratory rate", "breaths/min"),
    "spo2": ("oxygen saturation (SpO2)", "%"),
    "temperature": ("temperature", "degrees C"),
    "systolic_bp": ("systolic blood pressure", "mmHg"),
    "heart_rate": ("heart rate", "beats/min"),
}
WINDOWS: dict[str, int] = {"4h": 4 * 3600, "24h": 24 * 3600}
STATISTICS: dict[str, str] = {
    "last": "Latest",
    "min": "Minimum",
    "max": "Maximum",
    "mean": "Mean",
}


def _statistic(name: str, value: Column) -> Column:
    if name == "last":
        return latest_fact(value, F.col("observation_id"))
    if name == "min":
        return F.min(value)
    if name == "max":
        return F.max(value)
    return F.avg(value)


def build_vital_aggregates(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """Rolling last/min/max/mean of each vital sign at each horizon, as charted by then.

    Args:
        inputs: silver ``visits`` and ``observations`` (``observed_at``, ``charted_at``).
        options: the horizon choice.

    Returns:
        Keys (with ``known_at``), ``observation_sets_<w>`` and ``<vital>_<stat>_<w>``
        for every vital sign, statistic and window.
    """
    visits, observations = inputs["visits"], inputs["observations"]
    horizons = build_horizons(visits, observations, "observed_at", options)
    known = "charted_at" if "charted_at" in observations.columns else None
    events = with_known_at(observations, "observed_at", known)
    widest = max(WINDOWS.values())
    facts = facts_as_known(revisions(horizons, events, seconds=widest), events, seconds=widest)
    aggregates = []
    for window_name, seconds in WINDOWS.items():
        inside = F.col(EPOCH) > F.col(HORIZON_EPOCH) - seconds
        aggregates.append(
            F.count(F.when(inside, F.col("observation_id")))
            .cast("int")
            .alias(f"observation_sets_{window_name}")
        )
        for vital in VITALS:
            value = F.when(inside, F.col(vital).cast("double"))
            for stat in STATISTICS:
                aggregates.append(_statistic(stat, value).alias(f"{vital}_{stat}_{window_name}"))
    return facts.groupBy(*REVISION_KEYS).agg(*aggregates)


def fingerprint_vitals(inputs: Inputs) -> DataFrame:
    return visit_fingerprints(inputs["visits"], inputs["observations"])


def _vital_columns() -> tuple[FeatureColumn, ...]:
    columns = []
    for window_name in WINDOWS:
        columns.append(
            FeatureColumn(
                f"observation_sets_{window_name}",
                "int",
                f"Observation sets charted in the {window_name} up to the horizon.",
                sources=(
                    ("observations", "observation_id"),
                    ("observations", "observed_at"),
                    ("observations", "charted_at"),
                ),
            )
        )
        for vital, (label, unit) in VITALS.items():
            for stat, stat_label in STATISTICS.items():
                columns.append(
                    FeatureColumn(
                        f"{vital}_{stat}_{window_name}",
                        "double",
                        f"{stat_label} {label} ({unit}) charted in the {window_name} up to the "
                        "horizon; null when none.",
                        sources=(
                            ("observations", vital),
                            ("observations", "observed_at"),
                            ("observations", "charted_at"),
                        ),
                    )
                )
    return tuple(columns)


VITALS_COLUMNS: tuple[FeatureColumn, ...] = (
    *key_columns(
        "Time an observation set was taken (or a grid point): windows end here.",
        "When this row's sets were all charted: the horizon itself, or a later charting "
        "of a set taken in its 24 h window.",
    ),
    *_vital_columns(),
    VERSION_COLUMN,
)

VITAL_SIGNS = FeatureTableSpec(
    name="vital_signs",
    description="Last, min, max and mean of each vital sign over the 4 h and 24 h before "
    "each horizon.",
    inputs=("visits", "observations"),
    columns=VITALS_COLUMNS,
    build=build_vital_aggregates,
    fingerprint=fingerprint_vitals,
    horizon="each charted observation set (or the configured grid)",
)
