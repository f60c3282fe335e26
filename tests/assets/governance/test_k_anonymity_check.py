"""The blocking k-anonymity check on a stored table: a planted unique combination fails it."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from assets.governance.k_anonymity_check import k_anonymity_check, k_anonymity_check_spec
from resources.delta.store import DeltaTableStore
from transforms.features.demographics import QUASI_IDENTIFIERS

TABLE = ("gold", "features", "patient_demographics")


def published(people: int, *, planted: bool, level: int = 0) -> pa.Table:
    rows = [
        {
            "person_key": f"p{i}",
            "age_at_admission": None,
            "age_band": "40-59",
            "sex": "F",
            "postcode_district": "NW",
            "ethnicity": "White",
            "generalisation_level": 2,
        }
        for i in range(people)
    ]
    # Two withheld patients: rows that match anyone are no class of their own.
    rows += [
        {**dict.fromkeys(QUASI_IDENTIFIERS), "person_key": f"w{i}", "generalisation_level": 5}
        for i in range(2)
    ]
    if planted:
        rows.append({**rows[0], "person_key": "rare", "age_at_admission": 97, "age_band": "80+"})
        rows[-1]["generalisation_level"] = level
    schema = pa.schema(
        [
            ("person_key", pa.string()),
            ("age_at_admission", pa.int32()),
            *((name, pa.string()) for name in QUASI_IDENTIFIERS[1:]),
            ("generalisation_level", pa.int32()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def test_the_check_blocks_downstream_assets() -> None:
    spec = k_anonymity_check_spec(dg.AssetKey(list(TABLE)), 10)
    assert spec.blocking


def test_a_planted_unique_combination_fails_the_check(store: DeltaTableStore) -> None:
    store.overwrite(TABLE, published(12, planted=False))
    clean = k_anonymity_check(store, TABLE, QUASI_IDENTIFIERS, 10)
    assert clean.passed and clean.severity == dg.AssetCheckSeverity.ERROR
    assert clean.metadata["patients_withheld"].value == 2
    assert clean.metadata["patients_generalised"].value == 14
    store.overwrite(TABLE, published(12, planted=True))
    planted = k_anonymity_check(store, TABLE, QUASI_IDENTIFIERS, 10)
    assert not planted.passed
    assert planted.metadata["smallest_class"].value == 1
    assert planted.metadata["share_of_patients_below_k"].value == round(1 / 15, 4)
