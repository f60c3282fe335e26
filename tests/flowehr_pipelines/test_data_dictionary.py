"""The committed data dictionary is current, and every published table is described."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from assets.features.tables import IDENTIFIER_COLUMNS
from flowehr_pipelines.catalogue import COLUMN_SCHEMA
from flowehr_pipelines.cli import main
from flowehr_pipelines.data_dictionary import (
    DOCUMENT,
    REGENERATE,
    published_specs,
    render_data_dictionary,
)
from flowehr_pipelines.definitions import defs
from tests.reporting_keys import (
    REPORTING_QUERY_KEYS,
    REPORTING_STAGING_KEYS,
    REPORTING_VIEW_KEYS,
)

PUBLISHED = {
    "gold/features/cohorts/heart_failure_no_covid",
    "gold/features/cohorts/sepsis_adults",
    "gold/features/diagnoses",
    "gold/features/lab_summaries",
    "gold/features/news2",
    "gold/features/outcomes",
    "gold/features/patient_demographics",
    "gold/features/vital_signs",
    *REPORTING_STAGING_KEYS,
    *REPORTING_VIEW_KEYS,
    *REPORTING_QUERY_KEYS,
}


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def test_committed_data_dictionary_is_current(definitions: dg.Definitions) -> None:
    committed = DOCUMENT.read_text() if DOCUMENT.exists() else ""
    assert committed == render_data_dictionary(definitions), (
        f"{DOCUMENT} is stale: regenerate it with `{REGENERATE}` and commit the result"
    )


def test_every_published_table_has_a_described_column_schema(
    definitions: dg.Definitions,
) -> None:
    specs = published_specs(definitions)
    assert {s.key.to_user_string() for s in specs} == PUBLISHED
    for spec in specs:
        schema = spec.metadata.get(COLUMN_SCHEMA)
        assert isinstance(schema, dg.TableSchema), spec.key
        assert schema.columns, spec.key
        undescribed = [c.name for c in schema.columns if not (c.description or "").strip()]
        assert not undescribed, f"{spec.key.to_user_string()}: {undescribed}"
        assert spec.description, spec.key


def test_no_published_schema_has_an_identifier_column(definitions: dg.Definitions) -> None:
    for spec in published_specs(definitions):
        schema = spec.metadata[COLUMN_SCHEMA]
        names = {c.name.lower() for c in schema.columns}
        assert not names & IDENTIFIER_COLUMNS, spec.key


def test_cli_check_fails_on_a_stale_file_and_write_fixes_it(tmp_path: Path) -> None:
    target = tmp_path / "data_dictionary.md"
    target.write_text("# out of date\n")
    runner = CliRunner()
    stale = runner.invoke(main, ["docs", "data-dictionary", "--check", "--path", str(target)])
    assert stale.exit_code == 1
    assert target.read_text() == "# out of date\n"
    written = runner.invoke(main, ["docs", "data-dictionary", "--path", str(target)])
    assert written.exit_code == 0, written.output
    fresh = runner.invoke(main, ["docs", "data-dictionary", "--check", "--path", str(target)])
    assert fresh.exit_code == 0, fresh.output
