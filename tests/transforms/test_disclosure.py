"""Statistical disclosure control: OpenSAFELY's redact-then-round and midpoint-6 rules."""

from __future__ import annotations

import pyarrow as pa
import pytest

from transforms.disclosure import DisclosurePolicy, protect_counts, unprotected_cells

ROUND = DisclosurePolicy()
MIDPOINT6 = DisclosurePolicy(method="midpoint6")


@pytest.mark.parametrize(
    ("count", "published"),
    [(0, 0), (1, None), (5, None), (7, None), (8, 10), (12, 10), (13, 15), (17, 15), (18, 20)],
)
def test_round_suppresses_up_to_seven_then_rounds_to_five(count: int, published: int | None):
    assert ROUND.protect_value(count) == published
    assert ROUND.protect(pa.array([count])).to_pylist() == [published]


@pytest.mark.parametrize(
    ("count", "published"), [(0, 0), (1, 3), (6, 3), (7, 9), (12, 9), (13, 15), (18, 15)]
)
def test_midpoint6_keeps_zero_and_labels_each_band_by_its_midpoint(count: int, published: int):
    assert MIDPOINT6.protect_value(count) == published
    assert MIDPOINT6.protect(pa.array([count])).to_pylist() == [published]


def test_vectorised_and_scalar_rules_agree_on_every_count_to_500() -> None:
    counts = list(range(501))
    for policy in (ROUND, MIDPOINT6, DisclosurePolicy(threshold=10, rounding_base=10)):
        assert policy.protect(pa.array(counts)).to_pylist() == [
            policy.protect_value(c) for c in counts
        ]
        assert policy.unprotected(policy.protect(pa.array(counts))) == 0
        assert policy.unprotected(pa.array(counts)) > 0


def test_protect_counts_renames_midpoint6_and_suppresses_rates_of_small_groups() -> None:
    table = pa.table(
        {
            "month": ["a", "b", "c"],
            "recipients": [3, 40, 0],
            "per_recipient": [2.5, 1.2, None],
        }
    )
    rounded = protect_counts(table, ROUND, ["recipients"], {"per_recipient": "recipients"})
    assert rounded.column_names == ["month", "recipients", "per_recipient"]
    assert rounded["recipients"].to_pylist() == [None, 40, 0]
    assert rounded["per_recipient"].to_pylist() == [None, 1.2, None]
    assert unprotected_cells(rounded, ROUND, ["recipients"]) == 0

    midpoint = protect_counts(table, MIDPOINT6, ["recipients"])
    assert midpoint.column_names == ["month", "recipients_midpoint6", "per_recipient"]
    assert midpoint["recipients_midpoint6"].to_pylist() == [3, 39, 0]


def test_unprotected_cells_finds_a_small_or_unrounded_count() -> None:
    published = pa.table({"n": [0, None, 10, 6, 11]})
    assert unprotected_cells(published, ROUND, ["n"]) == 2


def test_policy_round_trips_through_table_properties() -> None:
    for policy in (ROUND, MIDPOINT6, DisclosurePolicy(threshold=10, rounding_base=10)):
        properties = policy.properties(["n"])
        assert DisclosurePolicy.decode(properties["flowehr.disclosure.rule"]) == policy
        assert properties["flowehr.disclosure.columns"] == "n"
