"""Pass 3 of the reporting domain: NHS Notify's 23 views and its analyst queries, as
Delta tables.

NHS Notify's reporting defines Athena views over its staging tables; a report tool
here queries plain tables instead. Each view (``transforms.reporting.views``) is one
asset, ``reporting/views/<name>``, downstream of the staging tables and views it reads.
A run recomputes the view in full with DuckDB and overwrites its table in one commit,
so running it again over the same inputs writes the same rows, and a view with no rows
is still a table with the dictionary's columns. A missing input (a staging table not
built yet) reads as empty. NHS Notify's analyst queries (``QUERIES``, such as
``pds_cleared_failures``) are built the same way under ``reporting/queries/<name>``.
"""

from datetime import UTC
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as pa_ds

from assets.governance.disclosure_check import disclosure_check, disclosure_check_spec
from assets.metadata import delta_table_metadata
from assets.reporting.as_of import AsOfConfig
from assets.reporting.settings import ReportingDomain, ReportingSettings
from resources.delta.store import DeltaTableStore, TablePath
from transforms.disclosure import DisclosurePolicy, protect_counts
from transforms.quality import refuse_identifiers
from transforms.reporting.dictionary import REPORTING_COLUMNS
from transforms.reporting.views import QUERIES, VIEWS, ViewParameters, ViewSpec
from transforms.reporting.views.compute import arrow_schema, columns_of, compute_view

VIEW_ZONE = ("reporting", "views")
QUERY_ZONE = ("reporting", "queries")
_QUERY_NAMES = frozenset(q.name for q in QUERIES)


def view_key(name: str) -> dg.AssetKey:
    """The asset key (and Delta path) of a view, ``reporting/views/<name>``, or of an
    analyst query, ``reporting/queries/<name>``."""
    return dg.AssetKey([*(QUERY_ZONE if name in _QUERY_NAMES else VIEW_ZONE), name])


def input_key(name: str) -> dg.AssetKey:
    """The asset key of a table a view reads: a staging table or another view."""
    return dg.AssetKey(["reporting", name]) if name in REPORTING_COLUMNS else view_key(name)


VIEW_KEYS: tuple[dg.AssetKey, ...] = tuple(view_key(v.name) for v in VIEWS)
QUERY_KEYS: tuple[dg.AssetKey, ...] = tuple(view_key(q.name) for q in QUERIES)


def _input(delta: DeltaTableStore, name: str) -> pa.Table | pa_ds.Dataset:
    """A lazy scan of an input table; an empty table of its columns when it is absent."""
    path: TablePath = input_key(name).path
    if not delta.exists(path):
        return arrow_schema(columns_of(name)).empty_table()
    return delta.dataset(path)


def refresh_view(
    spec: ViewSpec,
    *,
    delta: DeltaTableStore,
    parameters: ViewParameters,
    disclosure: DisclosurePolicy | None = None,
) -> dict[str, Any]:
    """Recompute one view from the lake and overwrite ``reporting/views/<name>``.

    A view counting people (recipients) is published under ``disclosure`` (the default
    policy when None), and the table's properties record the rule and its columns.

    Returns:
        Counts for the asset's metadata.
    """
    result = compute_view(spec, {name: _input(delta, name) for name in spec.reads}, parameters)
    target = view_key(spec.name).path
    refuse_identifiers(result, destination="/".join(target), values=False)
    counted: dict[str, Any] = {}
    if spec.people_counts:
        policy = disclosure or DisclosurePolicy()
        result = protect_counts(result, policy, spec.people_counts, spec.rates_of_people)
        counted["disclosure_rule"] = policy.rule
    delta.overwrite(target, result)
    if spec.people_counts:
        published = [policy.published_name(c) for c in spec.people_counts]
        delta.set_properties(target, policy.properties(published))
    return {
        "as_of_date": parameters.as_of_date.isoformat(),
        "rows_written": result.num_rows,
        **counted,
    }


def view_parameters(reporting: ReportingSettings, config: AsOfConfig) -> ViewParameters:
    """The cycle's parameters: the UTC as-of date and NHS Notify's client settings."""
    return ViewParameters(
        as_of_date=config.as_of_datetime().astimezone(UTC).date(),
        sms_nudge_client_id=reporting.sms_nudge_client_id,
        email_filter_client_ids=tuple(reporting.email_filter_client_ids),
    )


def build_view_defs(*, spec: ViewSpec, settings: ReportingDomain) -> dg.Definitions:
    """One pass-3 view asset, downstream of every table it reads."""
    key = view_key(spec.name)
    reporting = settings.reporting
    disclosure = settings.governance.disclosure.policy()

    @dg.asset(
        key=key,
        deps=[input_key(name) for name in spec.reads],
        description=spec.description
        + (
            f" Counts of people ({', '.join(spec.people_counts)}) are published under "
            f"disclosure control: {disclosure.rule} (NULL = suppressed)."
            if spec.people_counts
            else ""
        ),
        group_name="reporting",
        kinds={"sql", "delta"},
        owners=["team:reporting"],
        tags={"zone": "reporting", "pass": "3"},  # nosec B105: a tag value, not a password
        check_specs=[disclosure_check_spec(key)] if spec.people_counts else None,
    )
    def _view(config: AsOfConfig, delta: DeltaTableStore) -> dg.MaterializeResult:
        """A view of the staging tables, recomputed in full (see the asset's description)."""
        counts = refresh_view(
            spec,
            delta=delta,
            parameters=view_parameters(reporting, config),
            disclosure=disclosure,
        )
        return dg.MaterializeResult(
            metadata={**delta_table_metadata(delta, key.path), **counts},
            check_results=[disclosure_check(delta, key.path)] if spec.people_counts else None,
        )

    return dg.Definitions(assets=[_view])


def build_defs(settings: ReportingDomain) -> dg.Definitions:
    """Every NHS Notify view and analyst query as a pass-3 asset of the reporting group."""
    return dg.Definitions.merge(
        *[build_view_defs(spec=spec, settings=settings) for spec in (*VIEWS, *QUERIES)]
    )
