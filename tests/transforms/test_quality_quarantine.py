"""Silver quarantine rules for observations, lab results and diagnoses (pure PySpark)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession

from transforms.ehr_silver import (
    QUARANTINE_COLUMNS,
    Rule,
    clean_diagnoses,
    clean_lab_results,
    clean_observations,
    clean_visits,
    split_rows,
)

AS_OF = date(2026, 3, 1)

OBS_SCHEMA = (
    "observation_id long, visit_id long, observed_at string, respiratory_rate long, spo2 long, "
    "on_supplemental_oxygen long, temperature double, systolic_bp long, heart_rate long, "
    "consciousness string, updated_at string, change_seq long, is_deleted long"
)
LAB_SCHEMA = (
    "lab_result_id long, visit_id long, collected_at string, test_code string, value double, "
    "unit string, reference_low double, reference_high double, updated_at string, "
    "change_seq long, is_deleted long"
)
DX_SCHEMA = (
    "diagnosis_id long, visit_id long, icd10_code string, description string, "
    "recorded_at string, clinical_note string, updated_at string, change_seq long, "
    "is_deleted long"
)


@pytest.fixture(scope="module")
def visits(spark: SparkSession) -> DataFrame:
    """Clean silver visits: visit 1 and 2 are valid; anything else is unknown."""
    return spark.createDataFrame([(1, "pk-1"), (2, "pk-2")], "visit_id long, person_key string")


def obs(observation_id: int, visit_id: int | None = 1, **values: object) -> tuple:
    row = {
        "observed_at": "2026-02-20T10:00:00Z",
        "respiratory_rate": 18,
        "spo2": 96,
        "on_supplemental_oxygen": 0,
        "temperature": 37.1,
        "systolic_bp": 120,
        "heart_rate": 80,
        "consciousness": "A",
        "is_deleted": 0,
        **values,
    }
    return (
        observation_id,
        visit_id,
        row["observed_at"],
        row["respiratory_rate"],
        row["spo2"],
        row["on_supplemental_oxygen"],
        row["temperature"],
        row["systolic_bp"],
        row["heart_rate"],
        row["consciousness"],
        "2026-02-20T10:05:00Z",
        1000 + observation_id,
        row["is_deleted"],
    )


def reasons(quarantine: DataFrame) -> dict[str, str]:
    assert tuple(quarantine.columns) == QUARANTINE_COLUMNS
    return {row.record_key: row.reason for row in quarantine.collect()}


@pytest.fixture(scope="module")
def observations_split(spark: SparkSession, visits: DataFrame):
    rows = [
        obs(1),
        obs(2, spo2=100, respiratory_rate=0, heart_rate=300, temperature=45.0),  # bounds: valid
        obs(3, spo2=101),
        obs(4, spo2=-1),
        obs(5, temperature=98.6),  # Fahrenheit
        obs(6, temperature=24.9),
        obs(7, respiratory_rate=81),
        obs(8, systolic_bp=301),
        obs(9, heart_rate=-5),
        obs(10, consciousness="Z"),
        obs(11, consciousness=" v "),  # normalised to V
        obs(12, on_supplemental_oxygen=2),
        obs(13, visit_id=99),  # unknown visit
        obs(14, visit_id=None),
        obs(15, observed_at="20/02/2026 10:00"),
        obs(16, observed_at="2026-03-02T00:00:00Z"),
        obs(17, spo2=None, heart_rate=None, consciousness=None, on_supplemental_oxygen=None),
        obs(18, spo2=150, is_deleted=1),  # tombstone: neither clean nor quarantined
        obs(19, visit_id=2, observed_at="2026-03-01T23:00:00Z", on_supplemental_oxygen=1),
    ]
    split = clean_observations(spark.createDataFrame(rows, OBS_SCHEMA), visits, as_of=AS_OF)
    return split, {row.observation_id: row for row in split.clean.collect()}


def test_clean_observations_quarantines_impossible_readings_with_reasons(observations_split):
    split, _ = observations_split
    assert reasons(split.quarantine) == {
        "3": "SpO2 outside 0-100",
        "4": "SpO2 outside 0-100",
        "5": "temperature outside 25-45",
        "6": "temperature outside 25-45",
        "7": "respiratory rate outside 0-80",
        "8": "systolic blood pressure outside 0-300",
        "9": "heart rate outside 0-300",
        "10": "consciousness is not one of A, C, V, P, U",
        "12": "supplemental oxygen flag is not 0 or 1",
        "13": "orphan: no valid visit for this observation",
        "14": "orphan: no valid visit for this observation",
        "15": "observation time is missing or not ISO 8601",
        "16": "observation time is in the future",
    }


def test_clean_observations_types_and_keeps_missing_readings(observations_split):
    split, clean = observations_split
    assert sorted(clean) == [1, 2, 11, 17, 19]
    assert clean[11].consciousness == "V"
    assert clean[17].spo2 is None and clean[17].consciousness is None
    assert clean[17].on_supplemental_oxygen is None
    assert clean[19].on_supplemental_oxygen is True and clean[1].on_supplemental_oxygen is False
    assert clean[19].person_key == "pk-2"
    assert clean[1].observed_at == datetime(2026, 2, 20, 10, 0)
    assert clean[1].change_seq == 1001
    assert dict(split.clean.dtypes)["on_supplemental_oxygen"] == "boolean"
    assert dict(split.clean.dtypes)["spo2"] == "bigint"


def lab(lab_result_id: int, visit_id: int | None = 1, **values: object) -> tuple:
    row = {
        "collected_at": "2026-02-20T10:00:00Z",
        "test_code": "CRP",
        "value": 4.0,
        "unit": "mg/L",
        "reference_low": 0.0,
        "reference_high": 5.0,
        **values,
    }
    return (
        lab_result_id,
        visit_id,
        row["collected_at"],
        row["test_code"],
        row["value"],
        row["unit"],
        row["reference_low"],
        row["reference_high"],
        "2026-02-20T12:00:00Z",
        2000 + lab_result_id,
        values.get("is_deleted", 0),
    )


def test_clean_lab_results_quarantines_impossible_or_orphaned_results(
    spark: SparkSession, visits: DataFrame
):
    rows = [
        lab(1),
        lab(2, value=None),  # pending: kept
        lab(3, value=-0.5),
        lab(4, reference_low=10.0, reference_high=5.0),
        lab(5, test_code=" "),
        lab(6, test_code=None),
        lab(7, visit_id=42),
        lab(8, collected_at=None),
        lab(9, collected_at="2026-03-05T08:00:00Z"),
        lab(10, test_code=" hb "),
        lab(11, value=-3.0, is_deleted=1),
    ]
    split = clean_lab_results(spark.createDataFrame(rows, LAB_SCHEMA), visits, as_of=AS_OF)
    assert reasons(split.quarantine) == {
        "3": "lab value is negative",
        "4": "reference range low is above high",
        "5": "test code is missing",
        "6": "test code is missing",
        "7": "orphan: no valid visit for this lab result",
        "8": "collection time is missing or not ISO 8601",
        "9": "collection time is in the future",
    }
    clean = {row.lab_result_id: row for row in split.clean.collect()}
    assert sorted(clean) == [1, 2, 10]
    assert clean[10].test_code == "HB"
    assert clean[2].value is None
    assert split.clean.columns == [
        "lab_result_id",
        "visit_id",
        "person_key",
        "collected_at",
        "resulted_at",
        "test_code",
        "value",
        "unit",
        "reference_low",
        "reference_high",
        "change_seq",
    ]


def test_clean_diagnoses_drops_free_text_and_quarantines_bad_codes(
    spark: SparkSession, visits: DataFrame
):
    note = "Seen by Dr Who; patient Ada Lovelace, NHS 943 476 5919, agrees with plan."

    def dx(i: int, code: str | None = "J18.9", recorded: str | None = "2026-02-20T11:00:00Z",
           visit_id: int | None = 1) -> tuple:  # fmt: skip
        return (i, visit_id, code, "Pneumonia", recorded, note, recorded, 3000 + i, 0)

    rows = [
        dx(1),
        dx(2, "R55"),
        dx(3, "u07.1"),
        dx(4, "J1"),
        dx(5, "pneumonia"),
        dx(6, None),
        dx(7, recorded="yesterday"),
        dx(8, visit_id=7),
        dx(9, recorded="2026-03-02T09:00:00Z"),
    ]
    split = clean_diagnoses(spark.createDataFrame(rows, DX_SCHEMA), visits, as_of=AS_OF)
    assert reasons(split.quarantine) == {
        "4": "ICD-10 code is missing or malformed",
        "5": "ICD-10 code is missing or malformed",
        "6": "ICD-10 code is missing or malformed",
        "7": "recording time is missing or not ISO 8601",
        "8": "orphan: no valid visit for this diagnosis",
        "9": "recording time is in the future",
    }
    assert "clinical_note" not in split.clean.columns
    clean = {row.diagnosis_id: row for row in split.clean.collect()}
    assert sorted(clean) == [1, 2, 3]
    assert clean[3].icd10_code == "U07.1"
    assert all("943" not in str(value) for row in clean.values() for value in row)


def test_clean_visits_adds_length_of_stay_in_hours(spark: SparkSession):
    patients = spark.createDataFrame([(1, "pk-1")], "patient_id long, person_key string")
    visits = spark.createDataFrame(
        [
            (1, 1, "2026-02-10T08:00:00Z", "2026-02-12T16:30:00Z", "e", "w", "home", "x", 1, 0),
            (2, 1, "2026-02-10T08:00:00Z", None, "e", "w", None, "x", 2, 0),
            (3, 1, "2026-02-10T08:00:00Z", "2026-02-10T08:00:00Z", "e", "w", "home", "x", 3, 0),
        ],
        "visit_id long, patient_id long, admission_datetime string, discharge_datetime string, "
        "admission_type string, ward string, discharge_disposition string, updated_at string, "
        "change_seq long, is_deleted long",
    )
    clean = {r.visit_id: r for r in clean_visits(visits, patients, as_of=AS_OF).clean.collect()}
    assert clean[1].length_of_stay_hours == pytest.approx(56.5)
    assert clean[2].length_of_stay_hours is None
    assert clean[3].length_of_stay_hours == 0.0


def test_split_rows_names_the_first_failing_rule(spark: SparkSession):
    from pyspark.sql import functions as F

    df = spark.createDataFrame(
        [(1, 5, 1), (2, 50, 2), (3, None, 3)], "id long, x long, change_seq long"
    )
    split = split_rows(
        df,
        source_table="t",
        key="id",
        rules=[
            Rule("x is missing", F.col("x").isNull()),
            Rule("x above 10", F.col("x") > 10),
            Rule("x above 1", F.col("x") > 1),  # also true for id 2: the first rule wins
        ],
        columns=[F.col("id")],
    )
    assert reasons(split.quarantine) == {"1": "x above 1", "2": "x above 10", "3": "x is missing"}
    assert split.clean.count() == 0


def test_clean_lab_results_keeps_the_result_time_and_quarantines_impossible_ones(
    spark: SparkSession, visits: DataFrame
) -> None:
    schema = LAB_SCHEMA.replace("collected_at string,", "collected_at string, resulted_at string,")
    resulted = ["2026-02-20T13:00:00Z", None, "2026-02-20T09:00:00Z", "soon"]
    rows = [
        (*row[:3], when, *row[3:])
        for row, when in zip((lab(i) for i in (1, 2, 3, 4)), resulted, strict=True)
    ]
    split = clean_lab_results(spark.createDataFrame(rows, schema), visits, as_of=AS_OF)
    assert reasons(split.quarantine) == {
        "3": "result time is before the collection time",
        "4": "result time is not ISO 8601",
    }
    clean = {row.lab_result_id: row.resulted_at for row in split.clean.collect()}
    assert clean[1] == datetime(2026, 2, 20, 13, 0) and clean[2] is None
