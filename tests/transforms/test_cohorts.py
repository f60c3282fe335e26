"""Cohorts from code lists, age and admission on hand-built published tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from transforms.cohorts import build_cohort, load_cohort, named_definitions, parse_cohort

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def day(d: float) -> datetime:
    return T0 + timedelta(days=d)


# visit: (person, admitted day, discharged day, age, type)
VISITS: dict[int, tuple[str, float, float | None, int, str]] = {
    1: ("p1", 0, 5, 70, "emergency"),  # sepsis coded on the ward
    2: ("p2", 1, 3, 16, "emergency"),  # sepsis, but a child
    3: ("p3", 2, 4, 55, "elective"),  # sepsis, elective
    4: ("p4", 3, 6, 80, "emergency"),  # sepsis coded 10 days after discharge
    5: ("p5", 4, 9, 60, "emergency"),  # pneumonia only
    6: ("p6", 40, None, 45, "emergency"),  # sepsis, still admitted
    7: ("p1", 20, 22, 70, "emergency"),  # p1 again: sepsis and COVID-19
}
CODES: list[tuple[int, str, float]] = [
    (1, "A41.9", 0.2),
    (2, "A40.3", 1.1),
    (3, "A41", 2.5),
    (4, "A41.9", 16),
    (5, "J18.9", 4.5),
    (6, "A41.5", 40.5),
    (7, "A41.9", 20.1),
    (7, "U07.1", 20.2),
]


def tables() -> dict[str, pa.Table]:
    ts = pa.timestamp("us", tz="UTC")
    demographics = pa.table(
        {
            "visit_id": pa.array(list(VISITS), pa.int64()),
            "person_key": [v[0] for v in VISITS.values()],
            "horizon_datetime": pa.array([day(v[1]) for v in VISITS.values()], ts),
            "age_at_admission": pa.array([v[3] for v in VISITS.values()], pa.int32()),
            "age_band": [
                ("0-17", "40-59", "60-79", "80+")[(v[3] >= 40) + (v[3] >= 60) + (v[3] >= 80)]
                for v in VISITS.values()
            ],
            "admission_type": [v[4] for v in VISITS.values()],
        }
    )
    outcomes = pa.table(
        {
            "visit_id": pa.array(list(VISITS), pa.int64()),
            "discharge_datetime": pa.array(
                [None if v[2] is None else day(v[2]) for v in VISITS.values()], ts
            ),
        }
    )
    diagnoses = pa.table(
        {
            "visit_id": pa.array([c[0] for c in CODES], pa.int64()),
            "icd10_code": [c[1] for c in CODES],
            "known_at": pa.array([day(c[2]) for c in CODES], ts),
        }
    )
    return {"patient_demographics": demographics, "diagnoses": diagnoses, "outcomes": outcomes}


def cohort(generalised: tuple[int, ...] = (), **fields: Any) -> list[int]:
    """The cohort's visits; ``generalised`` visits publish their age as the band only."""
    definition = parse_cohort({"name": "test", "include": ["sepsis"], **fields})
    published = tables()
    demographics = published["patient_demographics"]
    ages = [
        None if visit in generalised else age
        for visit, age in zip(
            demographics.column("visit_id").to_pylist(),
            demographics.column("age_at_admission").to_pylist(),
            strict=True,
        )
    ]
    published["patient_demographics"] = demographics.set_column(
        3, "age_at_admission", pa.array(ages, pa.int32())
    )
    return (
        build_cohort(definition, definition.codelists(), published).column("visit_id").to_pylist()
    )


def test_inclusion_by_code_list_then_age_and_admission_type() -> None:
    assert cohort() == [1, 2, 3, 4, 7, 6]  # ordered by index time (admission)
    assert cohort(age={"min": 18}) == [1, 3, 4, 7, 6]
    assert cohort(age={"min": 18, "max": 69}, admission_types=["emergency"]) == [6]
    assert cohort(admitted={"from": "2026-03-02", "to": "2026-03-25"}) == [2, 3, 4, 7]
    assert cohort(age_bands=["60-79", "80+"]) == [1, 4, 7]


def test_an_age_published_as_its_band_counts_when_the_whole_band_is_in_range() -> None:
    every = (1, 2, 3, 4, 5, 6, 7)
    # 18 starts a band: the adult cohort is the same from bands alone.
    assert cohort(generalised=every, age={"min": 18}) == cohort(age={"min": 18})
    # 60-79 straddles 69: a generalised 70-year-old cannot be shown to be under 70 ...
    assert cohort(generalised=(1, 7), age={"max": 69}) == [2, 3, 6]
    # ... nor over 65, while 80+ lies wholly above it; 80+ has no top, so any max
    # leaves it out, while 60-79 lies inside 18-100.
    assert cohort(generalised=(1, 4, 7), age={"min": 65}) == [4]
    assert cohort(generalised=(1, 4, 7), age={"min": 18, "max": 100}) == [1, 3, 7, 6]


def test_exclusion_and_the_time_codes_must_be_known_by() -> None:
    assert cohort(exclude=["covid-19"]) == [1, 2, 3, 4, 6]
    # Coded 10 days after discharge: in by "any", out by "discharge"; still-admitted
    # visit 6 has no discharge to be coded by.
    assert cohort(codes_known_by="discharge") == [1, 2, 3, 7]
    assert cohort(codes_known_by="index") == []  # nobody is coded at the moment of admission
    assert cohort(index="discharge", codes_known_by="index") == [2, 3, 1, 7]


def test_a_discharge_index_gives_the_event_time_and_drops_open_visits() -> None:
    definition = parse_cohort({"name": "t", "include": ["sepsis"], "index": "discharge"})
    rows = build_cohort(definition, definition.codelists(), tables()).to_pylist()
    assert [(r["visit_id"], r["event_time"]) for r in rows][:2] == [(2, day(3)), (3, day(4))]
    assert 6 not in {r["visit_id"] for r in rows}
    assert set(rows[0]) == {
        "visit_id",
        "person_key",
        "event_time",
        "admission_datetime",
        "discharge_datetime",
        "age_at_admission",
        "admission_type",
    }


def test_bad_definitions_get_one_line_errors() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        parse_cohort({"name": "x", "inclde": ["sepsis"]})
    with pytest.raises(ValueError, match="is not a band such as"):
        parse_cohort({"name": "x", "age_bands": ["old"]})
    with pytest.raises(ValueError, match="index must be one of"):
        parse_cohort({"name": "x", "index": "midnight"})
    with pytest.raises(ValueError, match=r"age\.min is above age\.max"):
        parse_cohort({"name": "x", "age": {"min": 80, "max": 18}})
    with pytest.raises(FileNotFoundError, match=r"named ones: .*sepsis_adults"):
        load_cohort("nope")
    snomed = parse_cohort({"name": "x", "include": ["sepsis-snomed"]})
    with pytest.raises(ValueError, match="is snomedct; the diagnoses table holds ICD-10"):
        build_cohort(snomed, snomed.codelists(), tables())


def test_the_repository_definitions_load_and_hash_stably() -> None:
    definitions = named_definitions()
    assert {"sepsis_adults", "heart_failure_no_covid"} <= set(definitions)
    for definition in definitions.values():
        assert definition.codelists()
        assert parse_cohort(definition.record()).sha256 == definition.sha256
