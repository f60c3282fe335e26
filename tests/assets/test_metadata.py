"""Catalogue metadata: published tables get sample rows, restricted ones never do."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from assets.metadata import SAMPLE_ROWS, delta_table_metadata, sample_rows_markdown
from resources.delta.store import DeltaTableStore
from tests.lakes import local_store


def _store(tmp_path: Path) -> DeltaTableStore:
    return local_store(tmp_path / "lake")


def test_published_table_metadata_has_row_count_schema_and_capped_sample(tmp_path: Path) -> None:
    delta = _store(tmp_path)
    delta.overwrite(("reporting", "t"), pa.table({"k": list(range(20)), "v": ["x|y"] * 20}))
    metadata = delta_table_metadata(delta, ("reporting", "t"))
    assert metadata["dagster/row_count"].value == 20
    sample = metadata["sample_rows"].value
    assert sample.count("\n") == 1 + SAMPLE_ROWS  # header + rule + rows
    assert "x\\|y" in sample


def test_restricted_table_metadata_never_samples_rows(tmp_path: Path) -> None:
    delta = _store(tmp_path)
    for zone in ("bronze", "silver", "internal"):
        delta.overwrite((zone, "t"), pa.table({"nhs_number": ["9434765919"]}))
        metadata = delta_table_metadata(delta, (zone, "t"))
        assert "sample_rows" not in metadata, zone
        assert "9434765919" not in repr(metadata)


def test_sample_rows_markdown_cuts_long_values() -> None:
    text = sample_rows_markdown(pa.table({"a": ["z" * 100]}))
    assert "z" * 40 in text and "z" * 41 not in text
