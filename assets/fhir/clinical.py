"""The clinical source's bronze tables fed from a FHIR source instead of a SQL database.

For a hospital whose only feed is FHIR (``feeds_clinical_source: true``), this asset
maps the FHIR source's current resources onto ``bronze/ehr/{patients, visits,
observations, lab_results, diagnoses}`` (``transforms.fhir.source_rows``), the tables
the silver assets clean. Silver, its checks, the pseudonymiser and the feature store
then run unchanged. Each run recomputes the five tables from the FHIR bronze current
view and writes them as a diff (``DeltaTableStore.sync``): a deleted resource's row
disappears, an unchanged input commits nothing, and re-running is safe.
"""

from collections.abc import Iterator

import dagster as dg

from assets.fhir.landing import live_resources, resource_table
from assets.fhir.settings import FhirSourceSettings
from assets.keys import bronze_key
from resources.delta.store import DeltaTableStore
from transforms.fhir.source_rows import SOURCE_SCHEMAS, source_tables


def build_clinical_mapping_defs(*, source: FhirSourceSettings) -> dg.AssetsDefinition:
    """One multi-asset writing the clinical source's bronze tables from a FHIR source."""
    fhir_keys = [dg.AssetKey(list(resource_table(source.name, k))) for k in source.resource_types]
    specs = [
        dg.AssetSpec(
            key=bronze_key(name),
            deps=fhir_keys,
            description=(
                f"`{name}` of the clinical source, mapped from the `{source.name}` FHIR "
                "server's current resources. Restricted: holds patient identifiers."
            ),
            group_name="ehr",
            kinds={"fhir", "delta"},
            owners=["team:data-engineering"],
            tags={"zone": "bronze", "source": source.name, "pii": "true"},
        )
        for name in SOURCE_SCHEMAS
    ]

    @dg.multi_asset(
        name=f"clinical_source_from_fhir_{source.name}",
        specs=specs,
        description=f"Map the `{source.name}` FHIR resources onto the clinical source's tables.",
        required_resource_keys={"delta"},
    )
    def _map(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        delta: DeltaTableStore = context.resources.delta
        resources = {
            kind: live_resources(delta, source.name, kind) for kind in source.resource_types
        }
        for name, table in source_tables(resources).items():
            key = bronze_key(name)
            metrics = delta.sync(key.path, table, keys=[SOURCE_SCHEMAS[name].names[0]])
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "dagster/row_count": table.num_rows,
                    "rows_inserted": metrics.inserted,
                    "rows_updated": metrics.updated,
                    "rows_deleted": metrics.deleted,
                },
            )

    return _map
