"""Compute one NHS Notify view over Arrow tables or datasets (``transforms.reporting.views``)."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.dataset as pa_ds

from transforms.reporting import run_query
from transforms.reporting.dictionary import REPORTING_COLUMNS, ReportingColumn, arrow_schema
from transforms.reporting.views import (
    AS_OF_DATE,
    EMAIL_FILTER_CLIENT,
    SMS_NUDGE_CLIENT,
    VIEW_COLUMNS,
    ViewParameters,
    ViewSpec,
)


def columns_of(table: str) -> tuple[ReportingColumn, ...]:
    """The dictionary of a staging table or a view."""
    return REPORTING_COLUMNS[table] if table in REPORTING_COLUMNS else VIEW_COLUMNS[table]


def compute_view(
    spec: ViewSpec,
    tables: Mapping[str, pa.Table | pa_ds.Dataset],
    parameters: ViewParameters,
) -> pa.Table:
    """Run one view over its inputs and return it with the dictionary's exact schema.

    Args:
        spec: the view.
        tables: every table in ``spec.reads``, by name (Arrow tables or datasets).
        parameters: the cycle's as-of date and NHS Notify's client parameters.

    Raises:
        KeyError: an input is missing.
        ValueError: the SQL's columns are not the dictionary's, in its order.
    """
    inputs: dict[str, pa.Table | pa_ds.Dataset] = {name: tables[name] for name in spec.reads}
    nudge = [parameters.sms_nudge_client_id] if parameters.sms_nudge_client_id else []
    inputs[SMS_NUDGE_CLIENT] = pa.table({"clientid": pa.array(nudge, pa.string())})
    inputs[EMAIL_FILTER_CLIENT] = pa.table(
        {"clientid": pa.array(list(parameters.email_filter_client_ids), pa.string())}
    )
    result = run_query(spec.sql(), inputs, {AS_OF_DATE: parameters.as_of_date})
    schema = arrow_schema(spec.columns)
    if result.column_names != schema.names:
        raise ValueError(
            f"view {spec.name} returns {result.column_names}, its dictionary says {schema.names}"
        )
    return result.cast(schema)
