"""Bronze EHR rows to clean, pseudonymised silver rows, and demographics features."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from transforms.ehr_silver import (
    QUARANTINE_COLUMNS,
    Split,
    clean_patients,
    clean_visits,
    parse_timestamp,
    postcode_district,
)
from transforms.features.demographics import AGE_BANDS, age_band, build_demographics
from transforms.identifiers import hmac_sha256_hex

KEY = b"test-pseudonymisation-key-0123456789"
AS_OF = date(2026, 3, 1)
IDENTIFIER_COLUMNS = {"nhs_number", "mrn", "given_name", "family_name", "date_of_birth", "postcode"}

PATIENT_SCHEMA = (
    "patient_id long, mrn string, nhs_number string, given_name string, family_name string, "
    "date_of_birth string, sex string, postcode string, ethnicity string, updated_at string, "
    "change_seq long, is_deleted long"
)
VISIT_SCHEMA = (
    "visit_id long, patient_id long, admission_datetime string, discharge_datetime string, "
    "admission_type string, ward string, discharge_disposition string, updated_at string, "
    "change_seq long, is_deleted long"
)


def patient(
    patient_id: int,
    nhs_number: str | None = "9434765919",
    date_of_birth: str | None = "1980-05-17",
    *,
    postcode: str | None = "NW1 2BU",
    is_deleted: int | None = 0,
) -> tuple:
    return (
        patient_id,
        f"MRN{patient_id:05d}",
        nhs_number,
        "Ada",
        "Lovelace",
        date_of_birth,
        "f",
        postcode,
        "A",
        "2026-02-01T09:30:00Z",
        100 + patient_id,
        is_deleted,
    )


def visit(
    visit_id: int,
    patient_id: int,
    admitted: str | None = "2026-02-10T08:00:00Z",
    discharged: str | None = "2026-02-12T16:30:00Z",
    *,
    is_deleted: int | None = 0,
) -> tuple:
    return (
        visit_id,
        patient_id,
        admitted,
        discharged,
        "EMERGENCY",
        "WARD-1",
        "HOME",
        "2026-02-12T16:30:00Z",
        200 + visit_id,
        is_deleted,
    )


@dataclass(frozen=True)
class Collected:
    """A Split with both sides collected once, so each test reads rows, not Spark jobs."""

    split: Split
    clean: dict[int, Row]
    quarantine: dict[str, Row]

    @classmethod
    def of(cls, split: Split, key: str) -> Collected:
        assert tuple(split.quarantine.columns) == QUARANTINE_COLUMNS
        return cls(
            split=split,
            clean={row[key]: row for row in split.clean.collect()},
            quarantine={row.record_key: row for row in split.quarantine.collect()},
        )

    def reasons(self) -> dict[str, str]:
        return {key: row.reason for key, row in self.quarantine.items()}


@pytest.fixture(scope="module")
def patients(spark: SparkSession) -> Collected:
    rows = [
        patient(1),
        patient(2, "943 476 5919", postcode="SW1A1AA"),
        patient(3, "9434765918"),  # wrong check digit
        patient(4, None),
        patient(5, "12345678AB"),  # letters
        patient(6, "943476591"),  # nine digits
        patient(7, date_of_birth="2026-03-02"),  # after as_of
        patient(8, date_of_birth="1899-12-31"),
        patient(9, date_of_birth=None),
        patient(10, date_of_birth="17/05/1980"),
        patient(11, "9434765918", is_deleted=1),  # tombstone: neither clean nor quarantined
        patient(12, postcode="junk", is_deleted=None),
        patient(13, "4010232110", date_of_birth="1900-01-01", postcode=None),
        patient(14, date_of_birth="2026-03-01"),  # born on as_of: allowed
    ]
    df = spark.createDataFrame(rows, PATIENT_SCHEMA)
    return Collected.of(clean_patients(df, key=KEY, as_of=AS_OF), "patient_id")


def test_clean_patients_quarantines_with_reasons(patients: Collected):
    assert patients.reasons() == {
        "3": "invalid NHS number",
        "4": "NHS number is missing",
        "5": "invalid NHS number",
        "6": "invalid NHS number",
        "7": "date of birth is in the future",
        "8": "date of birth is before 1900",
        "9": "date of birth is missing or not a date",
        "10": "date of birth is missing or not a date",
    }


def test_clean_patients_quarantine_holds_no_identifiers(patients: Collected):
    row = patients.quarantine["3"]
    assert row.change_seq == 103
    assert row.source_table == "patients"
    assert "9434765918" not in " ".join(str(v) for v in row)


def test_clean_patients_drops_tombstones_and_keeps_valid_rows(patients: Collected):
    assert sorted(patients.clean) == [1, 2, 12, 13, 14]
    assert "11" not in patients.quarantine


def test_clean_patients_outputs_no_identifier_columns(patients: Collected):
    assert not IDENTIFIER_COLUMNS & set(patients.split.clean.columns)
    assert patients.split.clean.columns == [
        "patient_id",
        "person_key",
        "birth_year",
        "sex",
        "postcode_district",
        "ethnicity",
        "source_updated_at",
        "change_seq",
    ]


def test_clean_patients_person_key_is_hmac_of_ten_digits(patients: Collected):
    clean = patients.clean
    expected = hmac_sha256_hex(KEY, "9434765919")
    assert clean[1].person_key == expected
    assert clean[2].person_key == expected  # spaced form hashes to the same pseudonym
    assert clean[13].person_key == hmac_sha256_hex(KEY, "4010232110")


def test_clean_patients_types_values(patients: Collected):
    clean = patients.clean
    assert clean[1].birth_year == 1980
    assert clean[13].birth_year == 1900
    assert clean[1].sex == "F"
    assert clean[1].source_updated_at == datetime(2026, 2, 1, 9, 30)  # UTC session, naive
    assert clean[1].change_seq == 101


def test_clean_patients_keeps_postcode_district_only(patients: Collected):
    clean = patients.clean
    assert clean[1].postcode_district == "NW1"
    assert clean[2].postcode_district == "SW1A"
    assert clean[12].postcode_district is None
    assert clean[13].postcode_district is None


POSTCODE_DISTRICTS: list[tuple[str | None, str | None]] = [
    ("NW1 2BU", "NW1"),
    ("SW1A1AA", "SW1A"),
    ("sw1a 1aa", "SW1A"),
    ("M1 1AE", "M1"),
    ("B33 8TH", "B33"),
    ("CR2 6XH", "CR2"),
    ("DN55 1PT", "DN55"),
    ("  EC1A   1BB ", "EC1A"),
    ("junk", None),
    ("NW1", None),
    ("12345", None),
    ("NW1 2BUX", None),
    ("", None),
    (None, None),
]


def test_postcode_district_outward_code_or_null(spark: SparkSession):
    postcodes = [(i, postcode) for i, (postcode, _) in enumerate(POSTCODE_DISTRICTS)]
    df = spark.createDataFrame(postcodes, "i int, postcode string")
    got = df.select("i", postcode_district(F.col("postcode")).alias("d")).collect()
    assert {row.i: row.d for row in got} == {i: d for i, (_, d) in enumerate(POSTCODE_DISTRICTS)}


ISO_TIMESTAMPS: list[tuple[str | None, datetime | None]] = [
    ("2026-02-10T08:00:00Z", datetime(2026, 2, 10, 8, 0)),
    ("2026-02-10T09:00:00+01:00", datetime(2026, 2, 10, 8, 0)),
    ("2026-02-10T09:00:00+0100", datetime(2026, 2, 10, 8, 0)),
    ("2026-02-10T09:00:00.5+01:00", datetime(2026, 2, 10, 8, 0, 0, 500_000)),
    ("2026-02-10T08:00:00.250Z", datetime(2026, 2, 10, 8, 0, 0, 250_000)),
    ("2026-02-10T08:00:00", datetime(2026, 2, 10, 8, 0)),
    ("2026-02-10 08:00:00", datetime(2026, 2, 10, 8, 0)),
    ("10/02/2026 08:00", None),
    ("yesterday", None),
    (None, None),
]


def test_parse_timestamp_reads_iso_in_utc(spark: SparkSession):
    texts = [(i, text) for i, (text, _) in enumerate(ISO_TIMESTAMPS)]
    df = spark.createDataFrame(texts, "i int, t string")
    got = df.select("i", parse_timestamp(F.col("t")).alias("ts")).collect()
    assert {row.i: row.ts for row in got} == {i: ts for i, (_, ts) in enumerate(ISO_TIMESTAMPS)}


@pytest.fixture(scope="module")
def silver_patients(spark: SparkSession) -> DataFrame:
    rows = [patient(1), patient(2, "4010232110", "1940-01-01"), patient(3, "9434765918")]
    return clean_patients(spark.createDataFrame(rows, PATIENT_SCHEMA), key=KEY, as_of=AS_OF).clean


@pytest.fixture(scope="module")
def visits(spark: SparkSession, silver_patients: DataFrame) -> Collected:
    rows = [
        visit(1, 1),
        visit(2, 2, discharged=None),  # still admitted
        visit(3, 3),  # patient 3 was quarantined: orphan
        visit(4, 99),  # no such patient: orphan
        visit(5, 1, "2026-02-12T08:00:00Z", "2026-02-11T08:00:00Z"),
        visit(6, 1, "12/02/2026 08:00"),
        visit(7, 1, None),
        visit(8, 1, discharged="tomorrow"),
        visit(9, 1, "2026-03-02T00:00:00Z", None),  # after as_of
        visit(10, 99, is_deleted=1),  # tombstone
        visit(11, 1, "2026-03-01T23:59:00Z", None),  # late on as_of: allowed
    ]
    visits = spark.createDataFrame(rows, VISIT_SCHEMA)
    return Collected.of(clean_visits(visits, silver_patients, as_of=AS_OF), "visit_id")


def test_clean_visits_quarantines_with_reasons(visits: Collected):
    assert visits.reasons() == {
        "3": "orphan: no valid patient for this visit",
        "4": "orphan: no valid patient for this visit",
        "5": "discharge is before admission",
        "6": "admission time is missing or not ISO 8601",
        "7": "admission time is missing or not ISO 8601",
        "8": "discharge time is not ISO 8601",
        "9": "admission is in the future",
    }


def test_clean_visits_keeps_valid_rows_with_person_key(visits: Collected):
    clean = visits.clean
    assert sorted(clean) == [1, 2, 11]
    assert clean[1].person_key == hmac_sha256_hex(KEY, "9434765919")
    assert clean[1].admission_datetime == datetime(2026, 2, 10, 8, 0)
    assert clean[1].discharge_datetime == datetime(2026, 2, 12, 16, 30)
    assert clean[2].discharge_datetime is None
    assert "10" not in visits.quarantine  # a tombstone is neither clean nor quarantined


AGE_BAND_CASES: list[tuple[int | None, str | None]] = [
    (0, "0-17"),
    (17, "0-17"),
    (18, "18-39"),
    (39, "18-39"),
    (40, "40-59"),
    (59, "40-59"),
    (60, "60-79"),
    (79, "60-79"),
    (80, "80+"),
    (104, "80+"),
    (-1, None),
    (None, None),
]


def test_age_band_boundaries(spark: SparkSession):
    df = spark.createDataFrame([(age,) for age, _ in AGE_BAND_CASES], "age int")
    got = [row.band for row in df.select(age_band(F.col("age")).alias("band")).collect()]
    assert got == [band for _, band in AGE_BAND_CASES]


def test_age_bands_cover_every_age_without_gaps():
    lows = [low for low, _, _ in AGE_BANDS]
    highs = [high for _, high, _ in AGE_BANDS]
    assert lows[0] == 0
    assert highs[-1] is None
    assert all(high + 1 == low for high, low in zip(highs[:-1], lows[1:], strict=True))


def test_build_demographics_one_row_per_visit(spark: SparkSession):
    visits = spark.createDataFrame(
        [
            (3, "pk-a", datetime(2026, 1, 5, 10, 0, tzinfo=UTC), "ELECTIVE"),
            (1, "pk-a", datetime(2026, 1, 1, 0, 30, tzinfo=UTC), "EMERGENCY"),
            (2, "pk-b", datetime(2025, 12, 31, 23, 0, tzinfo=UTC), "EMERGENCY"),
            (4, "pk-missing", datetime(2026, 1, 1, tzinfo=UTC), "EMERGENCY"),
        ],
        "visit_id long, person_key string, admission_datetime timestamp, admission_type string",
    )
    patients = spark.createDataFrame(
        [("pk-a", 2008, "F", "NW1", "A"), ("pk-b", 1945, "M", None, None)],
        "person_key string, birth_year int, sex string, postcode_district string, ethnicity string",
    )
    rows = build_demographics(visits, patients).collect()
    assert [
        (r.visit_id, r.person_key, r.age_at_admission, r.age_band, r.sex, r.admission_type)
        for r in rows
    ] == [
        (1, "pk-a", 18, "18-39", "F", "EMERGENCY"),
        (2, "pk-b", 80, "80+", "M", "EMERGENCY"),
        (3, "pk-a", 18, "18-39", "F", "ELECTIVE"),
    ]
    assert rows[0].horizon_datetime == datetime(2026, 1, 1, 0, 30)
    assert not IDENTIFIER_COLUMNS & set(rows[0].asDict())
