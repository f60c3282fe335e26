"""Vital-sign aggregates over rolling windows at each horizon (pure PySpark).

For each vital sign and each window (4 h and 24 h) the table holds the last, minimum,
maximum and mean charted value in ``(horizon - window, horizon]``: range-based window
frames on epoch seconds, so a reading exactly at the horizon counts and a reading
exactly one window-length earlier has just left. Missing readings are ignored; a
window with no reading gives nulls (and a count of 0).
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
    IS_HORIZON,
    build_horizons,
    latest,
    stack_with_events,
    visit_window,
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
        return latest(value, F.col("observation_id"))
    if name == "min":
        return F.min(value)
    if name == "max":
        return F.max(value)
    return F.avg(value)


def build_vital_aggregates(inputs: Inputs, options: FeatureOptions) -> DataFrame:
    """Rolling last/min/max/mean of each vital sign at each horizon.

    Args:
        inputs: silver ``visits`` and ``observations``.
        options: the horizon choice.

    Returns:
        Keys, ``observation_sets_<w>`` and ``<vital>_<stat>_<w>`` for every vital sign,
        statistic and window.
    """
    visits, observations = inputs["visits"], inputs["observations"]
    horizons = build_horizons(visits, observations, "observed_at", options)
    stacked = stack_with_events(horizons, observations, "observed_at")
    aggregates = []
    for window_name, seconds in WINDOWS.items():
        frame = visit_window(seconds)
        aggregates.append(
            F.count("observation_id")
            .over(frame)
            .cast("int")
            .alias(f"observation_sets_{window_name}")
        )
        for vital in VITALS:
            value = F.col(vital).cast("double")
            for stat in STATISTICS:
                aggregates.append(
                    _statistic(stat, value).over(frame).alias(f"{vital}_{stat}_{window_name}")
                )
    return (
        stacked.select("visit_id", "person_key", "horizon_datetime", IS_HORIZON, *aggregates)
        .where(F.col(IS_HORIZON))
        .drop(IS_HORIZON)
    )


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
                sources=(("observations", "observation_id"), ("observations", "observed_at")),
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
                        sources=(("observations", vital), ("observations", "observed_at")),
                    )
                )
    return tuple(columns)


VITALS_COLUMNS: tuple[FeatureColumn, ...] = (
    *key_columns("Time of a charted observation set (or a grid point): windows end here."),
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
