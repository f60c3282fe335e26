"""Source ingestion from a real PostgreSQL database, not only the embedded SQLite."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from assets.ehr.bronze_loader import load_source_table
from assets.ehr.bronze_view import read_current
from assets.ehr.settings import SourceTable
from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from resources.sql_source import SourceUnavailableError, SqlSourceResource
from tests.integration.ehr_postgres import copy_sqlite_to_postgres
from tests.lakes import local_store

pytestmark = pytest.mark.integration

TABLES = {"patients": "patient_id", "visits": "visit_id"}


def test_postgres_source_loads_bulk_then_changelog_into_bronze(
    postgres_url: str, tmp_path: Path
) -> None:
    sqlite_path = tmp_path / "ehr.db"
    write_ehr_source(sqlite_path, patients=120, days=5, start_date=date(2026, 1, 1), seed=11)
    copy_sqlite_to_postgres(sqlite_path, postgres_url, TABLES)
    source = SqlSourceResource(url=postgres_url)
    delta = local_store(tmp_path / "lake")
    for table, key in TABLES.items():
        spec = SourceTable(name=table, primary_key=[key], batch_size=50)
        first = load_source_table(source_name="ehr", table=spec, source=source, delta=delta)
        assert first.mode == "bulk" and first.batches > 1

    apply_source_changes(sqlite_path, seed=5, update_fraction=0.1, delete_fraction=0.02)
    copy_sqlite_to_postgres(sqlite_path, postgres_url, TABLES)
    for table, key in TABLES.items():
        spec = SourceTable(name=table, primary_key=[key], batch_size=50)
        again = load_source_table(source_name="ehr", table=spec, source=source, delta=delta)
        assert again.mode == "changelog"
        with sqlite3.connect(sqlite_path) as db:
            expected = dict(db.execute(f"SELECT {key}, change_seq FROM {table}").fetchall())
        bronze = read_current(delta, ("bronze", "ehr", table), [key], columns=[key, "change_seq"])
        assert (
            dict(zip(bronze[key].to_pylist(), bronze["change_seq"].to_pylist(), strict=True))
            == expected
        )


def test_postgres_wrong_credentials_give_one_line_without_the_password(postgres_url: str) -> None:
    wrong = postgres_url.replace("/postgres", "/no_such_database")
    source = SqlSourceResource(url=wrong, password="s3cret-pw")
    with pytest.raises(SourceUnavailableError) as error:
        with source.connect():
            pass
    message = str(error.value)
    assert "s3cret-pw" not in message
    assert "no_such_database" in message
    assert "\n" not in message
