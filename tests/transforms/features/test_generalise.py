"""Generalisation to k-anonymity: checked by the independent DuckDB measure and by a
plain-Python re-coding of each row at the level it was given."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from transforms.features.demographics import DEMOGRAPHICS_LADDER, QUASI_IDENTIFIERS
from transforms.features.generalise import (
    LEVEL_COLUMN,
    GeneralisationStep,
    generalise_to_k,
    withhold,
)
from transforms.k_anonymity import measure_k_anonymity

ETHNICITIES = ("White - British", "White - Irish", "Asian or Asian British - Indian", "Not stated")
DISTRICTS = ("NW1", "NW3", "N7", "WC1", "E1")


def band(age: int) -> str:
    for low, high in ((0, 17), (18, 39), (40, 59), (60, 79)):
        if low <= age <= high:
            return f"{low}-{high}"
    return "80+"


def population(seed: int, people: int) -> list[dict[str, Any]]:
    """Patients with one to three visits; a common profile so that most reach k."""
    rng = random.Random(seed)
    rows = []
    for p in range(people):
        common = rng.random() < 0.6
        age = 45 if common else rng.randint(0, 99)
        profile = {
            "sex": "F" if common else rng.choice("FMU"),
            "postcode_district": "NW1" if common else rng.choice(DISTRICTS),
            "ethnicity": ETHNICITIES[0] if common else rng.choice(ETHNICITIES),
        }
        for v in range(rng.randint(1, 3)):
            rows.append(
                {
                    "visit_id": p * 10 + v,
                    "person_key": f"p{p}",
                    "age_at_admission": age + v // 2,
                    "age_band": band(age + v // 2),
                    **profile,
                }
            )
    return rows


def recode_in_python(row: dict[str, Any], level: int) -> dict[str, Any]:
    """The ladder's meaning, written out independently of the Spark expressions."""
    out = dict(row)
    if level >= 1:
        out["age_at_admission"] = None
    if level >= 2 and out["postcode_district"] is not None:
        out["postcode_district"] = "".join(c for c in out["postcode_district"] if c.isalpha())
    if level >= 3 and out["ethnicity"] is not None:
        out["ethnicity"] = out["ethnicity"].split(" - ")[0]
    if level >= 4:
        out["postcode_district"] = out["ethnicity"] = None
    if level >= 5:
        out.update({name: None for name in QUASI_IDENTIFIERS})
    return out


def generalised(spark: SparkSession, rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    frame = spark.createDataFrame(pa.Table.from_pylist(rows))
    out = generalise_to_k(
        frame, k=k, quasi_identifiers=QUASI_IDENTIFIERS, ladder=DEMOGRAPHICS_LADDER
    )
    return sorted((r.asDict() for r in out.collect()), key=lambda r: r["visit_id"])


@pytest.mark.parametrize(("seed", "k"), [(1, 10)])
def test_every_published_class_reaches_k_and_values_follow_the_ladder(
    spark: SparkSession, seed: int, k: int
) -> None:
    rows = population(seed, 120)
    published = generalised(spark, rows, k)
    report = measure_k_anonymity(pa.Table.from_pylist(published), QUASI_IDENTIFIERS, k=k)
    assert report.anonymous, report
    assert report.people == 120
    by_visit = {r["visit_id"]: r for r in rows}
    levels: dict[str, set[int]] = {}
    for row in published:
        level = row.pop(LEVEL_COLUMN)
        levels.setdefault(row["person_key"], set()).add(level)
        assert row == recode_in_python(by_visit[row["visit_id"]], level)
    # A patient's visits move together: one level per patient.
    assert all(len(found) == 1 for found in levels.values())
    # The common profile (dozens of patients) stays as recorded.
    assert min(min(found) for found in levels.values()) == 0


def test_a_planted_unique_patient_is_generalised_and_the_rest_left_alone(
    spark: SparkSession,
) -> None:
    crowd = [
        {
            "visit_id": i,
            "person_key": f"p{i}",
            "age_at_admission": 45,
            "age_band": "40-59",
            "sex": "F",
            "postcode_district": "NW1",
            "ethnicity": ETHNICITIES[0],
        }
        for i in range(12)
    ]
    unique = {**crowd[0], "visit_id": 99, "person_key": "unique", "age_at_admission": 97}
    unique["age_band"] = "80+"
    before = measure_k_anonymity(pa.Table.from_pylist([*crowd, unique]), QUASI_IDENTIFIERS, k=10)
    assert before.people_below_k == 1
    published = generalised(spark, [*crowd, unique], 10)
    levels = {r["person_key"]: r[LEVEL_COLUMN] for r in published}
    assert levels.pop("unique") == len(DEMOGRAPHICS_LADDER)  # alone at every level
    assert set(levels.values()) == {0}
    assert published[-1]["sex"] is None and published[-1]["age_band"] is None


def test_k_of_one_publishes_as_recorded(spark: SparkSession) -> None:
    rows = population(3, 20)
    published = generalised(spark, rows, 1)
    assert {r.pop(LEVEL_COLUMN) for r in published} == {0}
    assert published == sorted(rows, key=lambda r: r["visit_id"])


def test_a_ladder_that_ends_publishing_a_value_is_refused(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("p1", "F")], "person_key string, sex string")
    ladder = (GeneralisationStep("nothing withheld", {"sex": lambda c: c}),)
    with pytest.raises(ValueError, match="withhold every quasi-identifier"):
        generalise_to_k(frame, k=5, quasi_identifiers=("sex",), ladder=ladder)
    kept = (GeneralisationStep("sex withheld", {"sex": withhold}),)
    assert generalise_to_k(frame, k=5, quasi_identifiers=("sex",), ladder=kept).count() == 1
