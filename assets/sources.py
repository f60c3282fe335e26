"""Observable sources: a cheap data version for each input the pipeline reads from outside.

The ingestion assets (EHR bronze loads, landing-file ingestion, the opt-out list) read
things Dagster does not materialise: source databases, landed files, a configured file.
Each gets an observable source asset whose data version changes exactly when that input
does, and the ingestion asset depends on it. Dagster then knows, by data version, which
ingestion has new input; ``flowehr run`` observes them first and materialises only what
is downstream of a change (``flowehr_pipelines.automation.run_conditions``).

| source asset | data version | cost |
|---|---|---|
| ``source/<source>/<table>`` | the table's newest change number | a ``MAX`` |
| ``source/landing/transaction_history`` | digest of landed names and sizes | a listing |
| ``source/national_data_opt_out`` | the file's size and modification time | a ``stat`` |

An opt-out list held in a source table has no cheap version: the opt-out asset keeps its
own refresh cron for that case (``OptOutSettings.refresh_cron``).
"""

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import dagster as dg

from assets.ehr.etl_state import source_heads
from assets.ehr.settings import DataSourceConnection, EhrDomain
from assets.governance.opt_out import OPT_OUT_KEY
from assets.governance.settings import GovernanceDomain
from assets.reporting.ingestion import LANDING_PREFIX, TRANSACTION_HISTORY
from resources.object_store import ObjectStore
from resources.sql_source import SqlSourceResource
from transforms.landing import is_landing_file

SOURCES_GROUP = "sources"
LANDING_SOURCE = dg.AssetKey(["source", "landing", "transaction_history"])
OPT_OUT_SOURCE = dg.AssetKey(["source", "national_data_opt_out"])


class SourcesDomain(EhrDomain, GovernanceDomain, Protocol):
    """What the observable sources read: the source connections, the opt-out list."""

    @property
    def data_dir(self) -> Path: ...


def table_source_key(connection: str, table: str) -> dg.AssetKey:
    """The observable source of one source table."""
    return dg.AssetKey(["source", connection, table])


def landing_version(objects: ObjectStore) -> str:
    """A digest of every landed CDC file's name and size: new, removed or replaced files
    change it; listing is all it costs (no file is read)."""
    digest = hashlib.sha256()
    for key in sorted(k for k in objects.list_keys(LANDING_PREFIX) if is_landing_file(k)):
        digest.update(f"{key}\0{objects.size(key)}\n".encode())
    return digest.hexdigest()[:16]


def opt_out_file_version(path: Path) -> str:
    """The opt-out file's size and modification time (``missing`` when absent)."""
    if not path.exists():
        return "missing"
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _source_tables(connection: DataSourceConnection) -> dg.AssetsDefinition:
    specs = [
        dg.AssetSpec(
            table_source_key(connection.name, table.name),
            group_name=SOURCES_GROUP,
            kinds={"sql"},
            owners=["team:data-engineering"],
            description=f"`{table.name}` in the `{connection.name}` source database; its data "
            "version is the table's newest change number.",
        )
        for table in connection.tables
    ]

    @dg.multi_observable_source_asset(
        name=f"observe_{connection.name}_source",
        specs=specs,
        required_resource_keys={connection.name},
    )
    def _observe(context: dg.AssetExecutionContext) -> Iterator[dg.ObserveResult]:
        source: SqlSourceResource = getattr(context.resources, connection.name)
        heads = source_heads(source, connection.tables)
        for table in connection.tables:
            yield dg.ObserveResult(
                asset_key=table_source_key(connection.name, table.name),
                data_version=dg.DataVersion(str(heads[table.name])),
            )

    return _observe


def _landing_files() -> dg.AssetsDefinition:
    @dg.multi_observable_source_asset(
        name="observe_landing_files",
        specs=[
            dg.AssetSpec(
                LANDING_SOURCE,
                group_name=SOURCES_GROUP,
                kinds={"json"},
                owners=["team:data-engineering"],
                description="CDC files landed under landing/transaction_history; the data "
                "version is a digest of their names and sizes.",
            )
        ],
        required_resource_keys={"objects"},
    )
    def _observe(context: dg.AssetExecutionContext) -> Iterator[dg.ObserveResult]:
        yield dg.ObserveResult(
            asset_key=LANDING_SOURCE,
            data_version=dg.DataVersion(landing_version(context.resources.objects)),
        )

    return _observe


def _opt_out_list(settings: SourcesDomain) -> dg.AssetsDefinition:
    opt_out = settings.governance.opt_out
    path = Path(opt_out.file) if opt_out.file else None
    if path is not None and not path.is_absolute():
        path = Path(settings.data_dir) / path
    label = f"table {opt_out.source}.{opt_out.table}" if opt_out.source else "none"

    @dg.multi_observable_source_asset(
        name="observe_opt_out_list",
        specs=[
            dg.AssetSpec(
                OPT_OUT_SOURCE,
                group_name=SOURCES_GROUP,
                kinds={"file"},
                owners=["team:data-engineering"],
                description="The configured National Data Opt-out list; a file's data version "
                "is its size and modification time.",
            )
        ],
    )
    def _observe() -> Iterator[dg.ObserveResult]:
        version = opt_out_file_version(path) if path is not None else label
        yield dg.ObserveResult(asset_key=OPT_OUT_SOURCE, data_version=dg.DataVersion(version))

    return _observe


def source_dependencies(settings: SourcesDomain) -> dict[dg.AssetKey, dg.AssetKey]:
    """Each ingestion asset and the observable source it reads."""
    deps = {
        dg.AssetKey(["bronze", c.name, t.name]): table_source_key(c.name, t.name)
        for c in settings.data_source_connections
        for t in c.tables
    }
    deps[TRANSACTION_HISTORY] = LANDING_SOURCE
    deps[OPT_OUT_KEY] = OPT_OUT_SOURCE
    return deps


def build_defs(settings: SourcesDomain) -> dg.Definitions:
    """One observable source asset per input read from outside the lake."""
    # multi_observable_source_asset is marked beta in Dagster 1.13, yet it is the one way
    # to observe several tables in one step; without this the warning prints on every load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        observed = [_source_tables(c) for c in settings.data_source_connections]
        observed += [_landing_files(), _opt_out_list(settings)]
    return dg.Definitions(assets=observed)


def with_source_dependencies(defs: dg.Definitions, settings: SourcesDomain) -> dg.Definitions:
    """The ingestion assets with their observable sources as dependencies."""
    deps = source_dependencies(settings)

    def add(spec: dg.AssetSpec) -> dg.AssetSpec:
        source = deps[spec.key]
        if any(dep.asset_key == source for dep in spec.deps):
            return spec
        return spec.replace_attributes(deps=[*spec.deps, source])

    graph = defs.resolve_asset_graph()
    present = [key for key in deps if graph.has(key)]
    return defs.permissive_map_resolved_asset_specs(
        func=add, selection=dg.AssetSelection.assets(*present)
    )
