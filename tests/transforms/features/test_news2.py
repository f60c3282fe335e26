"""NEWS2 against hand-worked examples from the RCP (2017) chart, band edges and horizons."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import SparkSession

from tests.transforms.features.silver_rows import at, collect, frame, obs, visit
from transforms.features.dictionary import FeatureOptions
from transforms.features.news2 import build_news2, score_observations

NORMAL = {
    "respiratory_rate": 16,
    "spo2": 97,
    "on_supplemental_oxygen": False,
    "systolic_bp": 120,
    "heart_rate": 70,
    "consciousness": "A",
    "temperature": 37.0,
}

# (name, readings that differ from NORMAL, worked sub-scores
#  (RR, SpO2, air/O2, SBP, pulse, ACVPU, temp), total, band)
HAND_WORKED: list[tuple[str, dict[str, Any], tuple[int, ...], int, str]] = [
    ("all normal", {}, (0, 0, 0, 0, 0, 0, 0), 0, "low"),
    ("new confusion alone", {"consciousness": "C"}, (0, 0, 0, 0, 0, 3, 0), 3, "low-medium"),
    ("bradypnoea alone", {"respiratory_rate": 8}, (3, 0, 0, 0, 0, 0, 0), 3, "low-medium"),
    (
        "four ones, no red",
        {"respiratory_rate": 9, "spo2": 95, "systolic_bp": 101, "heart_rate": 41},
        (1, 1, 0, 1, 1, 0, 0),
        4,
        "low",
    ),
    (
        "medium",
        {
            "respiratory_rate": 22,
            "spo2": 95,
            "systolic_bp": 105,
            "heart_rate": 95,
            "temperature": 37.5,
        },
        (2, 1, 0, 1, 1, 0, 0),
        5,
        "medium",
    ),
    (
        "red within a medium total stays medium",
        {"respiratory_rate": 21, "consciousness": "V"},
        (2, 0, 0, 0, 0, 3, 0),
        5,
        "medium",
    ),
    (
        "high at exactly 7",
        {
            "respiratory_rate": 21,
            "spo2": 94,
            "on_supplemental_oxygen": True,
            "systolic_bp": 111,
            "heart_rate": 91,
            "temperature": 36.0,
        },
        (2, 1, 2, 0, 1, 0, 1),
        7,
        "high",
    ),
    (
        "septic picture",
        {
            "respiratory_rate": 26,
            "spo2": 91,
            "on_supplemental_oxygen": True,
            "systolic_bp": 95,
            "heart_rate": 115,
            "temperature": 38.5,
        },
        (3, 3, 2, 2, 2, 0, 1),
        13,
        "high",
    ),
    (
        "every parameter at its worst",
        {
            "respiratory_rate": 30,
            "spo2": 85,
            "on_supplemental_oxygen": True,
            "systolic_bp": 80,
            "heart_rate": 140,
            "consciousness": "U",
            "temperature": 34.5,
        },
        (3, 3, 2, 3, 3, 3, 3),
        20,
        "high",
    ),
]
SUBSCORE_COLUMNS = (
    "respiration_rate_score",
    "spo2_score",
    "air_or_oxygen_score",
    "systolic_bp_score",
    "pulse_score",
    "consciousness_score",
    "temperature_score",
)


def score(spark: SparkSession, rows: list[dict], *, spo2_scale: int = 1) -> list[dict]:
    full = [{**obs(i + 1, 1, 0), **NORMAL, **row} for i, row in enumerate(rows)]
    scored = score_observations(frame(spark, "observations", full), spo2_scale=spo2_scale)
    return collect(scored, "observation_id")


def test_news2_matches_hand_worked_chart_examples(spark: SparkSession) -> None:
    results = score(spark, [readings for _, readings, *_ in HAND_WORKED])
    for (name, _, subscores, total, band), row in zip(HAND_WORKED, results, strict=True):
        assert tuple(row[c] for c in SUBSCORE_COLUMNS) == subscores, name
        assert row["news2_total"] == total, name
        assert row["clinical_risk"] == band, name
        assert row["news2_missing_parameters"] == 0, name
        assert row["news2_any_red"] == (3 in subscores), name


# parameter, value, expected sub-score: both sides of every band edge on the chart.
BAND_EDGES = [
    *[
        ("respiratory_rate", v, s)
        for v, s in [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3)]
    ],
    *[("spo2", v, s) for v, s in [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0)]],
    *[
        ("systolic_bp", v, s)
        for v, s in [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
    ],
    *[
        ("heart_rate", v, s)
        for v, s in [
            (40, 3),
            (41, 1),
            (50, 1),
            (51, 0),
            (90, 0),
            (91, 1),
            (110, 1),
            (111, 2),
            (130, 2),
            (131, 3),
        ]
    ],
    *[
        ("temperature", v, s)
        for v, s in [
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
        ]
    ],
]
_SCORE_OF = {
    "respiratory_rate": "respiration_rate_score",
    "spo2": "spo2_score",
    "systolic_bp": "systolic_bp_score",
    "heart_rate": "pulse_score",
    "temperature": "temperature_score",
}


def test_news2_band_edges_score_as_charted(spark: SparkSession) -> None:
    results = score(spark, [{parameter: value} for parameter, value, _ in BAND_EDGES])
    for (parameter, value, expected), row in zip(BAND_EDGES, results, strict=True):
        assert row[_SCORE_OF[parameter]] == expected, (parameter, value)


def test_news2_spo2_scale_2_scores_oxygen_above_target(spark: SparkSession) -> None:
    cases = [
        (83, False, 3),
        (84, True, 2),
        (85, False, 2),
        (86, False, 1),
        (87, True, 1),
        (88, True, 0),
        (92, True, 0),
        (93, False, 0),
        (100, False, 0),
        (93, True, 1),
        (94, True, 1),
        (95, True, 2),
        (96, True, 2),
        (97, True, 3),
    ]
    rows = [{"spo2": s, "on_supplemental_oxygen": o} for s, o, _ in cases]
    results = score(spark, rows, spo2_scale=2)
    for (spo2, oxygen, expected), row in zip(cases, results, strict=True):
        assert row["spo2_score"] == expected, (spo2, oxygen)
        assert row["spo2_scale"] == 2
    # The same patient on 97% with oxygen: scale 2 scores 3 + 2 = 5 (medium), scale 1 2 (low).
    worked = {"spo2": 97, "on_supplemental_oxygen": True}
    assert score(spark, [worked], spo2_scale=2)[0]["news2_total"] == 5
    assert score(spark, [worked], spo2_scale=2)[0]["clinical_risk"] == "medium"
    assert score(spark, [worked], spo2_scale=1)[0]["news2_total"] == 2


def test_news2_missing_parameter_leaves_total_and_band_null(spark: SparkSession) -> None:
    row = score(spark, [{"spo2": None, "consciousness": "V"}])[0]
    assert row["spo2_score"] is None
    assert row["consciousness_score"] == 3
    assert row["news2_missing_parameters"] == 1
    assert row["news2_total"] is None
    assert row["clinical_risk"] is None


def test_news2_partial_total_is_a_floor_that_flags_medium_or_high(spark: SparkSession) -> None:
    rows = score(
        spark,
        [
            # No SpO2: respiration 25 (3) + voice (3) = 6 already, so at least medium.
            {"spo2": None, "respiratory_rate": 25, "consciousness": "V"},
            # No SpO2, the rest normal: a floor of 0, not flagged.
            {"spo2": None},
            # Complete: the partial total is the total.
            {"respiratory_rate": 25},
            # Nothing charted at all: no floor to give.
            {c: None for c in ("respiratory_rate", "spo2", "on_supplemental_oxygen",
                               "systolic_bp", "heart_rate", "consciousness", "temperature")},
        ],
    )  # fmt: skip
    got = [
        (r["news2_total"], r["news2_partial_total"], r["news2_partial_medium_or_high"])
        for r in rows
    ]
    assert got == [(None, 6, True), (None, 0, False), (3, 3, False), (None, None, False)]


def test_news2_rejects_an_unknown_spo2_scale(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="scale"):
        score_observations(frame(spark, "observations", [obs(1, 1, 0)]), spo2_scale=3)


def test_news2_scores_the_latest_set_at_or_before_each_horizon(spark: SparkSession) -> None:
    inputs = {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 10)]),
        "observations": frame(
            spark,
            "observations",
            [
                obs(1, 1, 1, respiratory_rate=22),
                obs(2, 1, 5, heart_rate=135, consciousness="P"),
            ],
        ),
    }
    event_rows = collect(build_news2(inputs, FeatureOptions()), "horizon_datetime")
    assert [(r["horizon_datetime"], r["news2_total"]) for r in event_rows] == [
        (at(1), 2),
        (at(5), 6),
    ]
    assert [r["clinical_risk"] for r in event_rows] == ["low", "medium"]

    grid = build_news2(inputs, FeatureOptions(horizon_grid_hours=2))
    by_horizon = {r["horizon_datetime"]: r for r in collect(grid)}
    assert sorted(by_horizon) == [at(h) for h in (0, 2, 4, 6, 8, 10)]
    assert by_horizon[at(0)]["news2_total"] is None  # nothing charted yet
    assert by_horizon[at(4)]["observed_at"] == at(1)
    assert by_horizon[at(4)]["news2_total"] == 2
    assert by_horizon[at(6)]["observed_at"] == at(5)
    assert by_horizon[at(10)]["news2_total"] == 6
