"""The blocking disclosure check reads a published table back against its recorded rule."""

from __future__ import annotations

import pyarrow as pa

from assets.governance.disclosure_check import disclosure_check
from resources.delta.store import DeltaTableStore
from transforms.disclosure import DisclosurePolicy, protect_counts

PATH = ("reporting", "views", "people_by_day")


def publish(store: DeltaTableStore, counts: list[int], policy: DisclosurePolicy) -> None:
    table = protect_counts(pa.table({"day": list(range(len(counts))), "n": counts}), policy, ["n"])
    store.overwrite(PATH, table)
    store.set_properties(PATH, policy.properties([policy.published_name("n")]))


def test_a_protected_table_passes_and_records_its_rule(store: DeltaTableStore) -> None:
    publish(store, [0, 3, 8, 41], DisclosurePolicy())
    assert store.read(PATH)["n"].to_pylist() == [0, None, 10, 40]
    result = disclosure_check(store, PATH)
    assert result.passed
    assert result.metadata["unprotected_cells"].value == 0


def test_a_planted_small_count_fails_the_check(store: DeltaTableStore) -> None:
    publish(store, [0, 30], DisclosurePolicy())
    store.overwrite(PATH, pa.table({"day": [0, 1], "n": pa.array([6, 30], pa.int64())}))
    result = disclosure_check(store, PATH)
    assert not result.passed
    assert result.metadata["unprotected_cells"].value == 1


def test_midpoint6_is_checked_under_its_own_name(store: DeltaTableStore) -> None:
    publish(store, [0, 2, 13], DisclosurePolicy(method="midpoint6"))
    assert store.read(PATH)["n_midpoint6"].to_pylist() == [0, 3, 15]
    assert disclosure_check(store, PATH).passed


def test_a_table_without_a_recorded_rule_fails(store: DeltaTableStore) -> None:
    store.overwrite(PATH, pa.table({"n": [10]}))
    result = disclosure_check(store, PATH)
    assert not result.passed
    assert result.metadata["problem"].value == "no disclosure rule recorded on the table"
