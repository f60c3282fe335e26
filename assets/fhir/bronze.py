"""Bronze assets for every configured FHIR Bulk Data source.

One factory, ``build_fhir_source_defs``, per entry of ``fhir_sources``: a multi-asset
that runs one ``$export`` (from the stored ``_since`` watermark) and lands it into
``bronze/<source>/fhir_<type>`` for each resource type, with quarantined lines in
``fhir_quarantine`` and the server's OperationOutcome issues in ``fhir_export_errors``.
The resource types are exported together (one export, one transaction time), so the
asset cannot be subset. A failure anywhere before the commits (the server, a download,
a damaged file) is one ``dg.Failure`` line and commits nothing.
"""

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg

from assets.fhir.landing import (
    Landing,
    errors_table,
    land_export,
    parse_export,
    quarantine_table,
    resource_table,
    stored_watermark,
)
from assets.fhir.settings import FhirSourceSettings
from resources.delta.store import DeltaTableStore
from resources.fhir_bulk import FhirBulkDataResource, FhirExportError
from resources.progress import Progress
from transforms.fhir.ndjson import NdjsonError

EXPORT_ISSUES_CHECK = "no_export_errors"
QUARANTINE_CHECK = "no_quarantined_lines"


def fhir_resource_key(source: FhirSourceSettings) -> str:
    """The Dagster resource key of a FHIR source's client."""
    return f"fhir_{source.name}"


def _spec(source: FhirSourceSettings, path: Sequence[str], what: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=dg.AssetKey(list(path)),
        description=f"{what} from the `{source.name}` FHIR server. Restricted: holds patient "
        "identifiers.",
        group_name="ehr",
        kinds={"fhir", "delta"},
        owners=["team:data-engineering"],
        tags={"zone": "bronze", "source": source.name, "pii": "true"},
    )


def export_specs(source: FhirSourceSettings) -> list[dg.AssetSpec]:
    specs = [
        _spec(
            source,
            resource_table(source.name, kind),
            f"{kind} resources landed by Bulk Data export (one row per load, tombstones kept)",
        )
        for kind in source.resource_types
    ]
    specs.append(
        _spec(source, quarantine_table(source.name), "Lines that could not land, with a reason,")
    )
    specs.append(_spec(source, errors_table(source.name), "OperationOutcome issues of exports"))
    return specs


def run_export(
    *,
    source: FhirSourceSettings,
    client: FhirBulkDataResource,
    delta: DeltaTableStore,
    log: dg.DagsterLogManager | None = None,
) -> Landing:
    """Export from the stored watermark and land it; every failure is one line.

    Raises:
        dg.Failure: when the export, a download or a file fails (nothing committed).
    """
    since = stored_watermark(delta, source.name, source.resource_types)
    info = log.info if log is not None else (lambda _: None)
    info(f"exporting {', '.join(source.resource_types)} since {since or 'the beginning'}")
    with (
        tempfile.TemporaryDirectory(prefix=f"fhir-{source.name}-") as spool,
        Progress(f"bronze/{source.name}/fhir", info, rows_unit="resources") as progress,
    ):
        try:
            progress.stage("export running on the server")
            export = client.export(since=since, spool=Path(spool), log=info, progress=progress)
            progress.stage("parsing", total=len(export.files), unit="files")
            parsed = parse_export(
                export.files, source.resource_types, on_file=lambda n: progress.advance(rows=n)
            )
        except (FhirExportError, NdjsonError) as exc:
            raise dg.Failure(
                description=f"FHIR source {source.name}: {exc}; the watermark stays at "
                f"{since or 'none'}",
                allow_retries=True,
            ) from None
        progress.stage("landing", total=len(source.resource_types), unit="resource types")
        try:
            landing = land_export(
                delta,
                source=source.name,
                types=source.resource_types,
                parsed=parsed,
                since=since,
                transaction_time=export.transaction_time,
                on_type=progress.advance,
            )
        except ValueError as exc:
            raise dg.Failure(
                description=f"FHIR source {source.name}: {exc}; the watermark stays at "
                f"{since or 'none'}"
            ) from None
    client.cancel(export.status_url)  # the IG's "done": the server may delete the files
    return landing


def _metadata(landing: Landing, kind: str) -> dict[str, str | int]:
    return {
        "since": landing.since or "",
        "transaction_time": landing.transaction_time,
        "resources_landed": landing.landed[kind],
        "resources_unchanged": landing.unchanged[kind],
        "resources_deleted": landing.deleted[kind],
    }


def build_fhir_source_defs(*, source: FhirSourceSettings) -> dg.AssetsDefinition:
    """One multi-asset exporting one FHIR server into its bronze tables."""
    resource_key = fhir_resource_key(source)
    errors_key = dg.AssetKey(list(errors_table(source.name)))
    quarantine_key = dg.AssetKey(list(quarantine_table(source.name)))

    @dg.multi_asset(
        name=f"bronze_fhir_{source.name}",
        specs=export_specs(source),
        check_specs=[
            dg.AssetCheckSpec(EXPORT_ISSUES_CHECK, asset=errors_key),
            dg.AssetCheckSpec(QUARANTINE_CHECK, asset=quarantine_key),
        ],
        description=f"Export the `{source.name}` FHIR server (Bulk Data) into bronze.",
        required_resource_keys={resource_key, "delta"},
        op_tags={"dagster/concurrency_key": f"fhir_{source.name}"},
    )
    def _export(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        delta: DeltaTableStore = context.resources.delta
        client: FhirBulkDataResource = getattr(context.resources, resource_key)
        landing = run_export(source=source, client=client, delta=delta, log=context.log)
        for kind in source.resource_types:
            yield dg.MaterializeResult(
                asset_key=dg.AssetKey(list(resource_table(source.name, kind))),
                metadata=_metadata(landing, kind),
            )
        yield dg.MaterializeResult(
            asset_key=quarantine_key,
            metadata={"quarantined_lines": landing.quarantined},
            check_results=[
                dg.AssetCheckResult(
                    check_name=QUARANTINE_CHECK,
                    asset_key=quarantine_key,
                    passed=landing.quarantined == 0,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"quarantined_lines": landing.quarantined},
                    description="Every line of this export landed (none quarantined).",
                )
            ],
        )
        severities = dict(sorted(landing.issues_by_severity.items()))
        serious = sum(n for s, n in severities.items() if s in ("fatal", "error"))
        yield dg.MaterializeResult(
            asset_key=errors_key,
            metadata={"issues_by_severity": dg.MetadataValue.json(severities)},
            check_results=[
                dg.AssetCheckResult(
                    check_name=EXPORT_ISSUES_CHECK,
                    asset_key=errors_key,
                    passed=serious == 0,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"issues_by_severity": dg.MetadataValue.json(severities)},
                    description="The server reported no error or fatal issue in this export.",
                )
            ],
        )

    return _export
