"""A feature table carrying identifiers is refused before its Delta commit, not after."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest

from assets.features.tables import (
    STATE_SCHEMA,
    ComputedUpdate,
    arrow_schema,
    commit_update,
    feature_key,
    state_path,
)
from tests.lakes import local_store
from transforms.features.dictionary import FeatureColumn, FeatureTableSpec
from transforms.features.pipeline import FEATURE_TABLES
from transforms.quality import IdentifierLeakError

SPEC = FEATURE_TABLES["patient_demographics"]


def _update(spec: FeatureTableSpec, extra: dict[str, str]) -> ComputedUpdate:
    row = {name: None for name in arrow_schema(spec).names} | {"visit_id": 1, **extra}
    return ComputedUpdate(
        rows=pa.Table.from_pylist([row], schema=arrow_schema(spec)),
        changed_visits=pa.table({"visit_id": pa.array([1], pa.int64())}),
        state=STATE_SCHEMA.empty_table(),
        full_rebuild=True,
        input_changelog_numbers={},
    )


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("nhs_number", "x", "'nhs_number' is an identifier column"),
        ("free_text", "seen 943 476 5919", "'free_text' holds NHS numbers"),
    ],
)
def test_feature_commit_refuses_identifiers_and_writes_nothing(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    delta = local_store(tmp_path / "lake")
    leaky = dataclasses.replace(
        SPEC, columns=(*SPEC.columns, FeatureColumn(column, "string", "a leak"))
    )
    with pytest.raises(IdentifierLeakError, match=message):
        commit_update(delta, leaky, _update(leaky, {column: value}))
    assert not delta.exists(feature_key(SPEC.name).path)
    assert not delta.exists(state_path(SPEC.name))


def test_feature_commit_writes_a_clean_table(tmp_path: Path) -> None:
    delta = local_store(tmp_path / "lake")
    commit_update(delta, SPEC, _update(SPEC, {}))
    assert delta.read(feature_key(SPEC.name).path).num_rows == 1
