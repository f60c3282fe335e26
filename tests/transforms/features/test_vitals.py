"""Rolling vital-sign windows on hand-made timelines, boundaries included."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from tests.transforms.features.silver_rows import at, collect, frame, obs, visit
from transforms.features.dictionary import FeatureOptions
from transforms.features.vitals import build_vital_aggregates


@pytest.fixture
def timeline(spark: SparkSession) -> dict:
    # heart rate 60, 70, (missing), 90 at 0 h, 1 h, 3 h, 4 h; then 100 at 8 h.
    observations = [
        obs(1, 1, 0, heart_rate=60),
        obs(2, 1, 1, heart_rate=70),
        obs(3, 1, 3, heart_rate=None),
        obs(4, 1, 4, heart_rate=90),
        obs(5, 1, 8, heart_rate=100),
        obs(6, 2, 2, heart_rate=50, person_key="p2"),  # another visit: never mixed in
    ]
    return {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 30), visit(2, "p2", 0, 30)]),
        "observations": frame(spark, "observations", observations),
    }


def test_vitals_windows_include_the_horizon_and_exclude_exactly_4h_before(timeline) -> None:
    rows = {
        r["horizon_datetime"]: r
        for r in collect(build_vital_aggregates(timeline, FeatureOptions()))
        if r["visit_id"] == 1
    }
    assert sorted(rows) == [at(h) for h in (0, 1, 3, 4, 8)]
    at4 = rows[at(4)]
    # (0 h, 4 h]: the 0 h reading is exactly 4 h old and has left the window.
    assert (at4["heart_rate_min_4h"], at4["heart_rate_max_4h"]) == (70, 90)
    assert at4["heart_rate_mean_4h"] == pytest.approx(80.0)
    assert at4["heart_rate_last_4h"] == 90
    assert at4["observation_sets_4h"] == 3
    # The 24 h window still holds it.
    assert (at4["heart_rate_min_24h"], at4["heart_rate_mean_24h"]) == (60, pytest.approx(73.333333))
    assert at4["observation_sets_24h"] == 4

    at3 = rows[at(3)]
    # The set at 3 h lacks a heart rate: "last" is the latest reading that exists.
    assert at3["heart_rate_last_4h"] == 70
    assert at3["heart_rate_mean_4h"] == pytest.approx(65.0)

    at8 = rows[at(8)]
    # 4 h reading is exactly 4 h before 8 h: gone; only the 8 h reading remains.
    assert (at8["heart_rate_min_4h"], at8["heart_rate_max_4h"]) == (100, 100)
    assert at8["observation_sets_4h"] == 1
    assert at8["heart_rate_max_24h"] == 100
    assert at8["respiratory_rate_last_4h"] == 16


def test_vitals_window_just_inside_4h_keeps_the_reading(spark: SparkSession) -> None:
    inputs = {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 30)]),
        "observations": frame(
            spark,
            "observations",
            [obs(1, 1, 0, systolic_bp=100), obs(2, 1, 4 - 1 / 3600, systolic_bp=140)],
        ),
    }
    last = collect(build_vital_aggregates(inputs, FeatureOptions()), "horizon_datetime")[-1]
    assert last["systolic_bp_min_4h"] == 100  # 3 h 59 min 59 s earlier: still inside
    assert last["observation_sets_4h"] == 2


def test_vitals_on_a_grid_see_only_readings_at_or_before_the_grid_point(timeline) -> None:
    rows = {
        r["horizon_datetime"]: r
        for r in collect(build_vital_aggregates(timeline, FeatureOptions(horizon_grid_hours=4)))
        if r["visit_id"] == 1
    }
    assert sorted(rows) == [at(h) for h in range(0, 31, 4)]
    assert rows[at(0)]["heart_rate_last_4h"] == 60
    assert rows[at(4)]["heart_rate_last_4h"] == 90
    assert rows[at(12)]["heart_rate_last_4h"] is None  # 8 h reading is exactly 4 h old
    assert rows[at(12)]["observation_sets_4h"] == 0
    assert rows[at(12)]["heart_rate_last_24h"] == 100


def test_vitals_same_second_readings_pick_the_higher_observation_id(spark: SparkSession) -> None:
    inputs = {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 30)]),
        "observations": frame(
            spark, "observations", [obs(8, 1, 2, heart_rate=88), obs(7, 1, 2, heart_rate=77)]
        ),
    }
    (row,) = collect(build_vital_aggregates(inputs, FeatureOptions()))
    assert row["heart_rate_last_4h"] == 88
    assert row["observation_sets_4h"] == 2
