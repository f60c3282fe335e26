"""PDS outcomes change the number that is pseudonymised and hide restricted districts."""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession

from tests.conftest import TEST_KEY
from transforms.ehr_silver import clean_patients
from transforms.identifiers import hmac_sha256_hex
from transforms.pds_silver import with_pds_outcomes

KEY = TEST_KEY.encode()
COLUMNS = [
    "patient_id",
    "nhs_number",
    "date_of_birth",
    "sex",
    "postcode",
    "ethnicity",
    "updated_at",
    "change_seq",
    "is_deleted",
]


def test_superseded_numbers_are_replaced_and_restricted_postcodes_dropped(
    spark: SparkSession,
) -> None:
    patients = spark.createDataFrame(
        [
            (1, "943 476 5919", "1950-01-01", "F", "NW1 2BU", "x", None, 1, 0),
            (2, "9000000009", "1960-01-01", "M", "SW9 2ZA", "x", None, 2, 0),
            (3, "4010232137", "1970-01-01", "M", "B15 4TX", "x", None, 3, 0),
        ],
        "patient_id long, nhs_number string, date_of_birth string, sex string, postcode string, "
        "ethnicity string, updated_at string, change_seq long, is_deleted int",
    )
    outcomes = spark.createDataFrame(
        [
            ("9434765919", "superseded", "4010232137", False, False),
            ("9000000009", "verified", None, True, True),
        ],
        "nhs_number string, outcome string, superseded_by string, deceased boolean, "
        "restricted boolean",
    )
    applied = with_pds_outcomes(patients, outcomes)
    assert applied.columns == COLUMNS
    clean = {
        r["patient_id"]: r
        for r in clean_patients(applied, key=KEY, as_of=date(2026, 1, 1)).clean.collect()
    }
    assert clean[1]["person_key"] == clean[3]["person_key"] == hmac_sha256_hex(KEY, "4010232137")
    assert clean[1]["postcode_district"] == "NW1"
    assert clean[2]["postcode_district"] is None
    assert clean[2]["person_key"] == hmac_sha256_hex(KEY, "9000000009")
    assert with_pds_outcomes(patients, None) is patients
