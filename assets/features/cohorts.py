"""Cohort assets: one per definition in ``transforms/cohorts/definitions``.

Each writes ``gold/features/cohorts/<name>``: the cohort's visits (``visit_id``,
``person_key``, ``event_time`` ...) built from the published demographics, diagnoses
and outcomes tables, so researchers read a ready spine and the UI shows who defined
it with which code-list versions. Pure DuckDB over Arrow (no Spark). A rebuild that
gives the same rows commits nothing, so re-running is free and the Delta history
only moves when the cohort does.
"""

import dagster as dg

from assets.features.tables import NO_IDENTIFIERS_CHECK, feature_key, identifier_check
from assets.metadata import delta_table_metadata
from resources.delta.store import DeltaTableStore
from transforms.cohorts import (
    COHORT_INPUTS,
    CohortDefinition,
    build_cohort,
    named_definitions,
)
from transforms.disclosure import DISCLOSURE_RULE_PROPERTY, DisclosurePolicy

COHORT_ZONE: tuple[str, ...] = ("gold", "features", "cohorts")


def cohort_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([*COHORT_ZONE, name])


def build_cohort_defs(
    definition: CohortDefinition, disclosure: DisclosurePolicy | None = None
) -> dg.Definitions:
    """The asset of one cohort definition; its counts of people are shown under
    ``disclosure`` (the default policy when None)."""
    policy = disclosure or DisclosurePolicy()
    key = cohort_key(definition.name)
    codelists = definition.codelists()

    @dg.asset(
        key=key,
        deps=[feature_key(name) for name in COHORT_INPUTS],
        description=definition.description or f"Cohort {definition.name}.",
        group_name="features",
        kinds={"duckdb", "delta"},
        owners=["team:data-engineering"],
        tags={"zone": "gold", "published": "researchers"},
        metadata={
            "cohort_definition": dg.MetadataValue.json(definition.record()),
            "codelists": dg.MetadataValue.json([c.record() for c in codelists.values()]),
        },
        code_version=definition.sha256[:16],
        required_resource_keys={"delta"},
        check_specs=[
            dg.AssetCheckSpec(
                NO_IDENTIFIERS_CHECK,
                asset=key,
                blocking=True,
                description="No patient identifier column reached this published table.",
            )
        ],
        op_tags={"dagster/concurrency_key": f"delta:{'/'.join(key.path)}"},
    )
    def _cohort(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        delta: DeltaTableStore = context.resources.delta
        inputs = {name: feature_key(name).path for name in COHORT_INPUTS}
        versions = {name: delta.table(path).version() for name, path in inputs.items()}
        tables = {name: delta.read(path, version=versions[name]) for name, path in inputs.items()}
        rows = build_cohort(definition, codelists, tables)
        path = key.path
        unchanged = delta.exists(path) and delta.read(path).equals(rows)
        if not unchanged:
            delta.overwrite(path, rows)
        delta.set_properties(path, {DISCLOSURE_RULE_PROPERTY: policy.encode()})
        people = len(set(rows.column("person_key").to_pylist()))
        visits, persons = policy.shown(rows.num_rows), policy.shown(people)
        context.log.info(
            f"cohort {definition.name}: {visits} visits of {persons} people"
            + (" (unchanged, nothing committed)" if unchanged else "")
        )
        return dg.MaterializeResult(
            metadata={
                **delta_table_metadata(delta, path),
                "visits": visits,
                "people": persons,
                "disclosure_rule": policy.rule,
                "definition_sha256": definition.sha256,
                "input_versions": dg.MetadataValue.json(versions),
                "committed": not unchanged,
            },
            check_results=[identifier_check(rows.column_names)],
        )

    return dg.Definitions(assets=[_cohort])


def build_defs(disclosure: DisclosurePolicy | None = None) -> dg.Definitions:
    """Cohort assets, one per named definition."""
    return dg.Definitions.merge(
        *[build_cohort_defs(definition, disclosure) for definition in named_definitions().values()]
    )
