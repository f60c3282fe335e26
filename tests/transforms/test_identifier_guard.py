"""The pre-write guard refuses a published table carrying identifiers, naming no value."""

from __future__ import annotations

import pyarrow as pa
import pytest

from transforms.quality import IdentifierLeakError, refuse_identifiers


@pytest.mark.parametrize(
    "column", ["nhs_number", "NHSNumber", "mrn", "name", "given_name", "dob", "Postcode"]
)
def test_guard_refuses_identifier_columns_by_name(column: str) -> None:
    with pytest.raises(IdentifierLeakError, match=f"refusing to write gold/x: '{column}'"):
        refuse_identifiers(pa.table({column: ["a"]}), destination="gold/x")


@pytest.mark.parametrize("value", ["9434765919", "943 476 5919", "ref 943-476-5919 today"])
def test_guard_refuses_nhs_numbers_in_any_text_column(value: str) -> None:
    table = pa.table({"note": ["fine", value], "n": [1, 2]})
    with pytest.raises(IdentifierLeakError, match="'note' holds NHS numbers") as raised:
        refuse_identifiers(table, destination="reporting/x")
    assert value not in str(raised.value)


def test_guard_passes_reduced_forms_and_lookalikes() -> None:
    table = pa.table(
        {
            "person_key": ["0123456789abcdef" * 4],
            "nhsnumberhash": ["9434765919" + "a" * 54],
            "postcode_district": ["NW1"],
            "birth_year": [1970],
            "clientname": ["Trust"],
            "order": ["9434765918"],  # ten digits, wrong check digit: not an NHS number
        }
    )
    refuse_identifiers(table, destination="gold/x")


def test_guard_by_name_only_skips_values() -> None:
    refuse_identifiers(pa.table({"note": ["9434765919"]}), destination="r", values=False)
