"""The reporting data dictionary names exactly the columns and types the tables store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from assets.metadata import column_type_name
from assets.reporting.staging import staging_key
from tests.assets.reporting_world import (
    NOW,
    STAGING_TABLES,
    Lake,
    client,
    item,
    lines,
    plan,
)
from transforms.reporting.dictionary import REPORTING_COLUMNS


def type_name(data_type: pa.DataType) -> str:
    """The dictionary's type name of a stored Arrow type."""
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"array<{column_type_name(data_type.value_type)}>"
    return column_type_name(data_type)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Every staging table built once from a delivered item, its plan and a client."""
    lake = Lake.at(Path(tmp_path_factory.mktemp("dictionary")))
    at = NOW - timedelta(hours=3)
    lake.land(
        "one",
        lines(
            [
                item("item-1", at, "DELIVERED", completed=at),
                plan("plan-1", at, "DELIVERED", completed=at),
                client("client-a", at, "Client A"),
            ]
        ),
    )
    lake.cycle()
    return lake


def test_the_dictionary_covers_every_staging_table() -> None:
    assert set(REPORTING_COLUMNS) == set(STAGING_TABLES)


@pytest.mark.parametrize("table", STAGING_TABLES)
def test_dictionary_columns_and_types_match_the_stored_table(lake: Lake, table: str) -> None:
    stored = pa.schema(lake.delta.table(staging_key(table).path).schema().to_arrow())
    assert [(f.name, type_name(f.type)) for f in stored] == [
        (c.name, c.type) for c in REPORTING_COLUMNS[table]
    ]
