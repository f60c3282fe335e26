"""Known-at (bitemporal) rows: each horizon as known at itself and at each later arrival."""

from __future__ import annotations

from pyspark.sql import SparkSession

from tests.transforms.features.silver_rows import at, collect, frame, lab, obs, visit
from transforms.features.dictionary import FeatureOptions
from transforms.features.labs import build_lab_summaries
from transforms.features.news2 import build_news2
from transforms.features.vitals import build_vital_aggregates


def test_a_late_lab_result_appears_only_from_its_report_time(spark: SparkSession) -> None:
    labs = [
        lab(1, 1, 1, "CRP", 3.0, low=0, high=5, resulted=2),
        lab(2, 1, 5, "CRP", 90.0, low=0, high=5, resulted=30),  # reported a day late
        lab(3, 1, 8, "NA", 140.0, low=133, high=146, resulted=9),
    ]
    inputs = {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 48)]),
        "lab_results": frame(spark, "lab_results", labs),
    }
    rows = collect(build_lab_summaries(inputs, FeatureOptions()), "horizon_datetime", "known_at")
    seen = [(r["horizon_datetime"], r["known_at"], r["lab_crp_latest"]) for r in rows]
    assert seen == [
        (at(1), at(1), None),  # collected, not yet reported
        (at(1), at(2), 3.0),
        (at(5), at(5), 3.0),  # the 90 was collected but is not known yet
        (at(5), at(30), 90.0),
        (at(8), at(8), 3.0),
        (at(8), at(9), 3.0),  # sodium reported; CRP still the 3.0 as known then
        (at(8), at(30), 90.0),
    ]
    last = rows[-1]
    assert last["lab_na_latest"] == 140.0 and last["lab_crp_hours_since"] == 3.0


def test_a_set_charted_late_revises_the_windows_and_the_score(spark: SparkSession) -> None:
    observations = [
        obs(1, 1, 1, heart_rate=70),
        obs(2, 1, 3, heart_rate=140, respiratory_rate=26, charted=6),  # entered from paper
    ]
    inputs = {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 48)]),
        "observations": frame(spark, "observations", observations),
    }
    vitals = collect(
        build_vital_aggregates(inputs, FeatureOptions()), "horizon_datetime", "known_at"
    )
    assert [(r["horizon_datetime"], r["known_at"]) for r in vitals] == [
        (at(1), at(1)),
        (at(3), at(3)),
        (at(3), at(6)),
    ]
    as_taken, as_charted = vitals[1], vitals[2]
    assert (as_taken["heart_rate_max_4h"], as_taken["observation_sets_4h"]) == (70.0, 1)
    assert (as_charted["heart_rate_max_4h"], as_charted["observation_sets_4h"]) == (140.0, 2)
    news2 = collect(build_news2(inputs, FeatureOptions()), "horizon_datetime", "known_at")
    by_revision = {(r["horizon_datetime"], r["known_at"]): r for r in news2}
    assert by_revision[(at(3), at(3))]["observed_at"] == at(1)
    assert by_revision[(at(3), at(3))]["news2_total"] == 0
    assert by_revision[(at(3), at(6))]["observed_at"] == at(3)
    assert by_revision[(at(3), at(6))]["news2_total"] == 6  # pulse 3 + respiration 3


def test_facts_without_a_known_at_time_are_known_at_their_event_time(
    spark: SparkSession,
) -> None:
    labs = [{**lab(1, 1, 1, "CRP", 3.0, low=0, high=5), "resulted_at": None}]
    inputs = {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 48)]),
        "lab_results": frame(spark, "lab_results", labs).drop("resulted_at"),
    }
    (row,) = collect(build_lab_summaries(inputs, FeatureOptions()))
    assert (row["known_at"], row["lab_crp_latest"]) == (at(1), 3.0)
