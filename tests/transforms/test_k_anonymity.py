"""k-anonymity counted in patients over the quasi-identifiers, NULL a value of its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pytest

from transforms.k_anonymity import measure_k_anonymity


def brute_force(
    rows: Sequence[Mapping[str, object]], qis: list[str], k: int
) -> tuple[int, int, int]:
    classes: dict[tuple[object, ...], set[object]] = {}
    for row in rows:
        if row["person_key"] is not None:
            classes.setdefault(tuple(row[q] for q in qis), set()).add(row["person_key"])
    below = set().union(*(people for people in classes.values() if len(people) < k))
    return len(classes), min(len(p) for p in classes.values()), len(below)


def test_a_planted_unique_combination_is_found() -> None:
    rows = [
        {"person_key": f"p{i}", "sex": "F", "district": "NW1", "age": 40} for i in range(12)
    ] + [{"person_key": "unique", "sex": "M", "district": "NW1", "age": 97}]
    report = measure_k_anonymity(pa.Table.from_pylist(rows), ["sex", "district", "age"], k=10)
    assert (report.classes, report.smallest_class, report.people_below_k) == (2, 1, 1)
    assert not report.anonymous and report.share_below_k == pytest.approx(1 / 13)
    assert measure_k_anonymity(pa.Table.from_pylist(rows[:12]), ["sex", "age"], k=10).anonymous


@pytest.mark.parametrize("seed", range(5))
def test_patients_not_rows_are_counted_as_a_brute_force_count_does(seed: int) -> None:
    import random

    rng = random.Random(seed)
    rows = [
        {
            "person_key": rng.choice([f"p{i}" for i in range(40)] + [None]),
            "sex": rng.choice(["F", "M", None]),
            "age_band": rng.choice(["18-39", "40-59", "60-79"]),
        }
        for _ in range(300)
    ]
    report = measure_k_anonymity(pa.Table.from_pylist(rows), ["sex", "age_band"], k=5)
    assert (report.classes, report.smallest_class, report.people_below_k) == brute_force(
        rows, ["sex", "age_band"], 5
    )
