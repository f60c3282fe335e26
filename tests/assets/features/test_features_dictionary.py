"""The data dictionary is complete and consistent, and the identifier check bites."""

from __future__ import annotations

import pytest

from assets.features.tables import (
    IDENTIFIER_COLUMNS,
    arrow_schema,
    column_lineage,
    identifier_check,
)
from transforms.features.dictionary import FeatureTableSpec
from transforms.features.pipeline import FEATURE_TABLES

SPECS = list(FEATURE_TABLES.values())


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_features_dictionary_describes_every_column(spec: FeatureTableSpec) -> None:
    names = spec.column_names
    assert names[:3] == ["visit_id", "person_key", "horizon_datetime"]
    assert names[-1] == "feature_version"
    assert len(names) == len(set(names))
    assert not IDENTIFIER_COLUMNS & set(names)
    assert len(arrow_schema(spec)) == len(names)  # every declared type maps to Arrow
    for column in spec.columns:
        assert len(column.description) > 15, column.name
        for table, _ in column.sources:
            assert table in spec.inputs, (spec.name, column.name, table)
    assert spec.description.endswith(".") and spec.horizon


def test_features_lineage_points_at_silver_columns() -> None:
    lineage = column_lineage(FEATURE_TABLES["lab_summaries"])
    deps = lineage.deps_by_column["lab_crp_abnormal"]
    assert {(d.asset_key.to_user_string(), d.column_name) for d in deps} == {
        ("silver/ehr/lab_results", "value"),
        ("silver/ehr/lab_results", "reference_low"),
        ("silver/ehr/lab_results", "reference_high"),
        ("silver/ehr/lab_results", "test_code"),
        ("silver/ehr/lab_results", "collected_at"),
        ("silver/ehr/lab_results", "resulted_at"),
    }


def test_features_identifier_check_fails_on_identifier_columns() -> None:
    assert identifier_check(["visit_id", "person_key"]).passed
    failed = identifier_check(["visit_id", "patient_id", "nhs_number"])
    assert not failed.passed
    assert failed.metadata["identifier_columns_found"].value == 2
