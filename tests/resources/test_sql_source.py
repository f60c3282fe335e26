"""SqlSourceResource against a SQLite file, and against a database that is not there."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from resources.sql_source import (
    SourceUnavailableError,
    SqlSourceResource,
    arrow_column,
    arrow_type,
    whole_part,
)

PASSWORD = "s3cret"


@pytest.fixture
def source(tmp_path: Path) -> SqlSourceResource:
    path = tmp_path / "ehr.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE patients (
                patient_id INTEGER PRIMARY KEY, nhs_number TEXT, weight REAL,
                active BOOLEAN, born DATE, updated_at DATETIME,
                change_seq INTEGER NOT NULL
            );
            INSERT INTO patients VALUES
                (1, '9434765919', 70.5, 1, '1980-05-17', '2026-02-01 09:30:00', 10),
                (2, NULL, NULL, NULL, NULL, NULL, 20),
                (3, '4010232110', 60.0, 0, '1990-01-01', '2026-02-02 10:00:00', 30),
                (4, NULL, NULL, NULL, NULL, NULL, 40),
                (5, '9434765919', 80.0, 1, '2000-12-31', '2026-02-03 11:00:00', 50);
            """
        )
    return SqlSourceResource(url=f"sqlite:///{path}")


def test_sql_source_reflect_gives_explicit_arrow_schema(source: SqlSourceResource):
    table = source.reflect("patients")
    batch = source.read_changes(table, change_column="change_seq", after=0, limit=100)
    assert batch.schema == pa.schema(
        [
            ("patient_id", pa.int64()),
            ("nhs_number", pa.string()),
            ("weight", pa.float64()),
            ("active", pa.bool_()),
            ("born", pa.date32()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
            ("change_seq", pa.int64()),
        ]
    )


def test_sql_source_all_null_batch_keeps_column_types(source: SqlSourceResource):
    table = source.reflect("patients")
    # Rows 2 and 4 are NULL in every nullable column.
    batch = source.read_changes(table, change_column="change_seq", after=30, limit=1)
    assert batch.num_rows == 1
    assert batch["nhs_number"].null_count == 1
    assert batch.schema.field("weight").type == pa.float64()
    assert batch.schema.field("born").type == pa.date32()
    assert batch.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")


def test_sql_source_read_changes_typed_values(source: SqlSourceResource):
    table = source.reflect("patients")
    row = source.read_changes(table, change_column="change_seq", after=0, limit=1).to_pylist()[0]
    assert row == {
        "patient_id": 1,
        "nhs_number": "9434765919",
        "weight": 70.5,
        "active": True,
        "born": date(1980, 5, 17),
        "updated_at": datetime(2026, 2, 1, 9, 30, tzinfo=UTC),
        "change_seq": 10,
    }


def test_sql_source_read_changes_paginates_by_change_column(source: SqlSourceResource):
    table = source.reflect("patients")
    seen: list[int] = []
    after, batches = 0, 0
    while True:
        batch = source.read_changes(table, change_column="change_seq", after=after, limit=2)
        if batch.num_rows == 0:
            break
        batches += 1
        changes = batch["change_seq"].to_pylist()
        assert changes == sorted(changes)
        assert all(c > after for c in changes)
        seen.extend(changes)
        after = changes[-1]
    assert seen == [10, 20, 30, 40, 50]
    assert batches == 3


def test_sql_source_read_changes_after_last_is_empty_but_typed(source: SqlSourceResource):
    table = source.reflect("patients")
    batch = source.read_changes(table, change_column="change_seq", after=50, limit=10)
    assert batch.num_rows == 0
    assert batch.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")


def test_sql_source_max_change_and_scalar(source: SqlSourceResource):
    table = source.reflect("patients")
    assert source.max_change(table, "change_seq") == 50
    assert source.scalar("SELECT COUNT(*) FROM patients WHERE change_seq > :n", {"n": 25}) == 3


def test_sql_source_max_change_of_empty_table_is_none(source: SqlSourceResource):
    with source.connect() as connection:
        connection.execute(sa.text("DELETE FROM patients"))
        connection.commit()
    assert source.max_change(source.reflect("patients"), "change_seq") is None


def test_sql_source_unknown_table_names_it(source: SqlSourceResource):
    with pytest.raises(SourceUnavailableError, match="has no table 'no_such_table'"):
        source.reflect("no_such_table")


def test_sql_source_unreachable_database_hides_password():
    source = SqlSourceResource(url="postgresql+psycopg2://user@127.0.0.1:1/db", password=PASSWORD)
    with pytest.raises(SourceUnavailableError) as info:
        source.reflect("patients")
    message = str(info.value)
    assert message.startswith("cannot connect to source postgresql+psycopg2://user@127.0.0.1:1/db:")
    assert "refused" in message
    assert PASSWORD not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_sql_source_display_url_masks_password():
    source = SqlSourceResource(url=f"postgresql://user:{PASSWORD}@db:5432/ehr")
    assert PASSWORD not in source.display_url()
    assert "***" in source.display_url()


def test_sql_source_password_is_used_for_connecting():
    source = SqlSourceResource(url="postgresql://user@db/ehr", password=PASSWORD)
    assert source.engine.url.password == PASSWORD
    assert PASSWORD not in repr(source.engine.url)
    source.engine.dispose()


@pytest.mark.parametrize(
    ("column_type", "arrow"),
    [
        (sa.Integer(), pa.int64()),
        (sa.BigInteger(), pa.int64()),
        (sa.Boolean(), pa.bool_()),
        (sa.Float(), pa.float64()),
        (sa.Numeric(10, 2), pa.float64()),
        (sa.DateTime(), pa.timestamp("us", tz="UTC")),
        (sa.Date(), pa.date32()),
        (sa.Text(), pa.string()),
        (sa.String(20), pa.string()),
    ],
)
def test_arrow_type_maps_sql_types(column_type, arrow):
    assert arrow_type(column_type) == arrow


def test_arrow_column_refuses_a_fraction_in_an_integer_column() -> None:
    assert arrow_column([97, None, 98.0], pa.int64()).to_pylist() == [97, None, 98]
    with pytest.raises(pa.ArrowInvalid):
        arrow_column([97, 97.5], pa.int64())  # pa.array would store 97
    assert arrow_column([1, 2.5], pa.float64()).to_pylist() == [1.0, 2.5]


def test_max_change_counts_only_whole_numbers(source: SqlSourceResource) -> None:
    with source.connect() as connection:
        connection.execute(sa.text("UPDATE patients SET change_seq = 'abc' WHERE patient_id = 4"))
        connection.execute(sa.text("UPDATE patients SET change_seq = 55.5 WHERE patient_id = 2"))
        connection.commit()
    table = source.reflect("patients")
    assert source.max_change(table, "change_seq") == 50
    unusable = source.unusable_changes(table, "change_seq", after=10)
    assert sorted(r["patient_id"] for r in unusable) == [2, 4]
    assert source.unusable_changes(table, "change_seq", after=60) == [
        r for r in unusable if r["patient_id"] == 4
    ]  # text sorts above every number: never behind the watermark


@pytest.mark.parametrize(
    ("value", "whole"), [(5, 5), (5.0, 5), (5.5, 5), ("5", None), (None, None), (True, None)]
)
def test_whole_part(value: object, whole: int | None) -> None:
    assert whole_part(value) == whole
