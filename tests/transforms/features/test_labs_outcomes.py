"""Lab summaries as of each horizon, and outcome labels from hand-made visit histories."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from tests.transforms.features.silver_rows import at, collect, frame, lab, visit
from transforms.features.dictionary import FeatureOptions
from transforms.features.labs import build_lab_summaries
from transforms.features.outcomes import build_outcomes


def test_labs_latest_value_and_flag_as_of_each_collection(spark: SparkSession) -> None:
    labs = [
        lab(1, 1, 1, "CRP", 3.0, low=0, high=5),
        lab(2, 1, 1, "NA", 128.0, low=133, high=146),
        lab(3, 1, 25, "CRP", 80.0, low=0, high=5),
        lab(4, 1, 25, "NA", None, low=133, high=146),  # not resulted: earlier value stands
    ]
    inputs = {
        "visits": frame(spark, "visits", [visit(1, "p1", 0, 48)]),
        "lab_results": frame(spark, "lab_results", labs),
    }
    first, second = collect(build_lab_summaries(inputs, FeatureOptions()), "horizon_datetime")
    assert first["horizon_datetime"] == at(1)
    assert (first["lab_crp_latest"], first["lab_crp_abnormal"]) == (3.0, False)
    assert (first["lab_na_latest"], first["lab_na_abnormal"]) == (128.0, True)
    assert first["lab_hb_latest"] is None and first["lab_hb_abnormal"] is None
    assert first["lab_crp_hours_since"] == 0.0
    assert first["abnormal_tests"] == 1
    assert second["horizon_datetime"] == at(25)
    assert (second["lab_crp_latest"], second["lab_crp_abnormal"]) == (80.0, True)
    assert second["lab_na_latest"] == 128.0
    assert second["lab_na_hours_since"] == pytest.approx(24.0)
    assert second["abnormal_tests"] == 2


def test_outcomes_label_stay_death_and_30_day_readmission(spark: SparkSession) -> None:
    visits = [
        visit(1, "p1", 0, 48),  # readmitted 10 days after discharge
        visit(2, "p1", 48 + 240, 48 + 240 + 24),  # next admission 40 days later: no
        visit(3, "p1", 48 + 240 + 24 + 960, 48 + 240 + 24 + 1000, disposition="died"),
        visit(4, "p2", 0, None),  # still admitted
        visit(5, "p3", 0, 10, disposition="transfer"),
    ]
    rows = {
        r["visit_id"]: r
        for r in collect(
            build_outcomes({"visits": frame(spark, "visits", visits)}, FeatureOptions())
        )
    }
    assert rows[1]["length_of_stay_hours"] == 48.0
    assert rows[1]["readmitted_30d"] is True
    assert rows[1]["days_to_readmission"] == pytest.approx(10.0)
    assert rows[1]["in_hospital_death"] is False
    assert rows[1]["horizon_datetime"] == at(0)
    assert rows[2]["readmitted_30d"] is False
    assert rows[2]["days_to_readmission"] is None
    assert rows[3]["in_hospital_death"] is True
    assert rows[3]["readmitted_30d"] is None
    assert rows[4]["length_of_stay_hours"] is None
    assert rows[4]["in_hospital_death"] is None and rows[4]["readmitted_30d"] is None
    assert rows[5]["readmitted_30d"] is False
