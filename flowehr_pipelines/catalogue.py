"""Column schemas for the published tables, attached to the asset definitions.

The published zones (``gold/features`` for researchers, ``reporting`` for report
consumers; see docs/CONTRACTS.md §1) carry ``dagster/column_schema`` as definition metadata, with a
description for every column, so the UI's catalogue shows each table's columns before
anything is materialised. The schemas come from the data dictionaries kept beside the
transforms: ``transforms.features.dictionary`` (through ``FEATURE_TABLES``) and
``transforms.reporting.dictionary`` (with ``transforms.reporting.views`` for the
``reporting/views`` zone). ``flowehr docs data-dictionary`` renders the same
metadata as Markdown (``flowehr_pipelines.data_dictionary``).
"""

from __future__ import annotations

import warnings

import dagster as dg

from assets.features.cohorts import COHORT_ZONE
from assets.features.tables import FEATURE_ZONE, dictionary_schema
from assets.reporting.views import QUERY_ZONE, VIEW_ZONE
from transforms.cohorts import COHORT_SCHEMA
from transforms.features.pipeline import FEATURE_TABLES
from transforms.reporting.dictionary import REPORTING_COLUMNS, ReportingColumn
from transforms.reporting.views import QUERY_COLUMNS, VIEW_COLUMNS

COLUMN_SCHEMA = "dagster/column_schema"
PUBLISHED_ZONES: tuple[tuple[str, ...], ...] = (
    FEATURE_ZONE,
    COHORT_ZONE,
    ("reporting",),
    VIEW_ZONE,
    QUERY_ZONE,
)


def is_published(key: dg.AssetKey) -> bool:
    """True for a table in a published zone: ``gold/features/<t>``,
    ``gold/features/cohorts/<t>``, ``reporting/<t>``, ``reporting/views/<t>`` or
    ``reporting/queries/<t>``."""
    return any(
        len(key.path) == len(zone) + 1 and tuple(key.path[: len(zone)]) == zone
        for zone in PUBLISHED_ZONES
    )


def column_schema(key: dg.AssetKey) -> dg.TableSchema | None:
    """The data dictionary's schema of a published table; None when it has none."""
    *zone, table = key.path
    if tuple(zone) == FEATURE_ZONE and table in FEATURE_TABLES:
        return dictionary_schema(FEATURE_TABLES[table])
    if tuple(zone) == COHORT_ZONE:
        return dg.TableSchema(
            columns=[dg.TableColumn(name=n, type=t, description=d) for n, t, d in COHORT_SCHEMA]
        )
    if tuple(zone) == ("reporting",) and table in REPORTING_COLUMNS:
        return _reporting_schema(REPORTING_COLUMNS[table])
    if tuple(zone) == VIEW_ZONE and table in VIEW_COLUMNS:
        return _reporting_schema(VIEW_COLUMNS[table])
    if tuple(zone) == QUERY_ZONE and table in QUERY_COLUMNS:
        return _reporting_schema(QUERY_COLUMNS[table])
    return None


def _reporting_schema(columns: tuple[ReportingColumn, ...]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=c.name, type=c.type, description=c.description) for c in columns
        ]
    )


def _with_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    schema = column_schema(spec.key) if is_published(spec.key) else None
    if schema is None:
        return spec
    return spec.merge_attributes(metadata={COLUMN_SCHEMA: schema})


def attach_column_schemas(defs: dg.Definitions) -> dg.Definitions:
    """The same definitions, each published table carrying its dictionary's column schema.

    ``map_resolved_asset_specs`` is marked preview in Dagster 1.13; its preview warning
    is silenced here only, so a code-location load does not log it every time.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_resolved_asset_specs(func=_with_schema)
