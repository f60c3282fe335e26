"""Great Expectations suites: they fail on bad data, pass on good, and never show identifiers."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from transforms.expectations import (
    NHS_VALID_COLUMN,
    freshness_suite,
    key_suite,
    nhs_number_problems,
    nhs_number_suite,
    range_suite,
    validate,
    with_nhs_number_validity,
)


def by_expectation(result) -> dict:
    return {r.expectation: r for r in result.results}


def test_key_suite_counts_duplicates_and_nulls_without_showing_keys() -> None:
    frame = pd.DataFrame(
        {"patient_id": [1, 2, 2, None, 5], "person_key": ["a", "b", None, "d", "e"]}
    )
    result = validate(
        frame,
        key_suite("patients_keys", ["patient_id"], required=["person_key"]),
        identifier_columns=["patient_id", "person_key"],
    )
    assert not result.success
    assert result.rows == 5
    outcomes = by_expectation(result)
    assert outcomes["expect_column_values_to_be_unique(patient_id)"].unexpected_count == 2
    assert outcomes["expect_column_values_to_not_be_null(patient_id)"].unexpected_count == 1
    assert outcomes["expect_column_values_to_not_be_null(person_key)"].unexpected_count == 1
    assert all(r.examples == () and r.observed_value is None for r in result.results)


def test_key_suite_passes_on_a_clean_compound_key() -> None:
    frame = pd.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"]})
    assert validate(frame, key_suite("compound_ok", ["a", "b"])).success
    frame = pd.DataFrame({"a": [1, 1, 2], "b": ["x", "x", "x"]})
    result = validate(frame, key_suite("compound_bad", ["a", "b"]), identifier_columns=["a", "b"])
    assert not result.success
    assert (
        by_expectation(result)["expect_compound_columns_to_be_unique(a, b)"].unexpected_count == 2
    )


def test_range_suite_shows_failing_values_of_value_columns() -> None:
    frame = pd.DataFrame(
        {"spo2": [97, 104, -3, None, 100], "consciousness": ["A", "V", "Z", None, "A"]}
    )
    result = validate(
        frame,
        range_suite("obs_ranges", {"spo2": (0, 100)}, allowed_values={"consciousness": "ACVPU"}),
    )
    assert not result.success
    outcomes = by_expectation(result)
    spo2 = outcomes["expect_column_values_to_be_between(spo2)"]
    assert spo2.unexpected_count == 2
    assert sorted(spo2.examples) == [-3, 104]
    assert outcomes["expect_column_values_to_be_in_set(consciousness)"].examples == ("Z",)
    assert validate(frame.iloc[[0, 4]], range_suite("obs_ok", {"spo2": (0, 100)})).success


def test_range_suite_keeps_at_most_a_few_examples() -> None:
    frame = pd.DataFrame({"value": [-float(i) for i in range(1, 50)]})
    result = validate(frame, range_suite("labs_many", {"value": (0, None)}), max_examples=3)
    (outcome,) = result.results
    assert outcome.unexpected_count == 49
    assert len(outcome.examples) == 3


@pytest.mark.parametrize("naive", [True, False])
def test_freshness_suite_fails_when_the_newest_row_is_too_old(naive: bool) -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    stamps = pd.Series(pd.to_datetime(["2026-03-01T08:00:00", "2026-03-05T09:30:00"], utc=True))
    if naive:
        stamps = stamps.dt.tz_localize(None)
    frame = pd.DataFrame({"observed_at": stamps})
    stale = validate(
        frame, freshness_suite("f_stale", "observed_at", newest_not_before=now - timedelta(days=3))
    )
    assert not stale.success
    assert stale.results[0].observed_value.startswith("2026-03-05T09:30:00")
    fresh = validate(
        frame, freshness_suite("f_fresh", "observed_at", newest_not_before=now - timedelta(days=7))
    )
    assert fresh.success


def test_nhs_number_suite_counts_invalid_numbers_by_reason_only() -> None:
    numbers = ["9434765919", "943 476 5919", "9434765918", "943476591", None, "94347659AB"]
    frame = with_nhs_number_validity(pd.DataFrame({"nhs_number": numbers}), "nhs_number")
    assert list(frame.columns) == [NHS_VALID_COLUMN]
    result = validate(frame, nhs_number_suite("nhs"), identifier_columns=[NHS_VALID_COLUMN])
    assert not result.success
    assert result.results[0].unexpected_count == 4
    assert result.results[0].examples == ()
    problems = nhs_number_problems(numbers)
    assert problems == {
        "NHS number check digit is wrong (modulus 11)": 1,
        "NHS number is missing": 1,
        "NHS number must be 10 digits, got 9": 1,
        "NHS number must contain only digits (0-9), spaces or hyphens": 1,
    }
    assert not any(n and n in " ".join(problems) for n in numbers)
    clean = with_nhs_number_validity(pd.DataFrame({"nhs_number": numbers[:2]}), "nhs_number")
    assert validate(clean, nhs_number_suite("nhs_ok")).success


def test_expectations_module_imports_neither_dagster_nor_great_expectations() -> None:
    code = (
        "import sys, transforms.expectations; "
        "print('dagster' in sys.modules, 'great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
