"""Metadata every published asset shows in the UI: rows, version, schema."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from resources.delta.store import DeltaTableStore, TablePath, logged_row_count

_TYPE_NAMES = {
    pa.string(): "string",
    pa.large_string(): "string",
    pa.int64(): "bigint",
    pa.int32(): "int",
    pa.float64(): "double",
    pa.bool_(): "boolean",
    pa.date32(): "date",
}


def column_type_name(data_type: pa.DataType) -> str:
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    return _TYPE_NAMES.get(data_type, str(data_type))


def table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=field.name, type=column_type_name(field.type)) for field in schema
        ]
    )


# Zones whose rows are pseudonymous and published, so sample rows may be shown in the UI.
# Bronze and internal tables hold identifiers: they never get a sample.
SAMPLED_ZONES = frozenset({"gold", "reporting"})
SAMPLE_ROWS = 5


def sample_rows_markdown(data: pa.Table) -> str:
    """A Markdown table of a few rows, values cut to 40 characters."""
    columns = data.column_names
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in data.to_pylist():
        cells = ("" if row[c] is None else str(row[c])[:40].replace("|", "\\|") for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def delta_table_metadata(delta: DeltaTableStore, table: TablePath) -> dict[str, Any]:
    """Row count, version, file count, location and schema, read from the Delta log only.

    Published (pseudonymous) tables also get a few sample rows for the catalogue.
    """
    dt = delta.table(table)
    actions = dt.get_add_actions(flatten=True)
    rows = logged_row_count(dt)
    schema = pa.schema(dt.schema().to_arrow())
    return {
        "dagster/row_count": dg.MetadataValue.int(int(rows)),
        "dagster/column_schema": table_schema(schema),
        "dagster/uri": dg.MetadataValue.path(delta.uri(table)),
        "delta_version": dg.MetadataValue.int(dt.version()),
        "delta_files": dg.MetadataValue.int(actions.num_rows),
        **(
            {
                "sample_rows": dg.MetadataValue.md(
                    sample_rows_markdown(delta.head(table, SAMPLE_ROWS))
                )
            }
            if table[0] in SAMPLED_ZONES and rows
            else {}
        ),
    }
