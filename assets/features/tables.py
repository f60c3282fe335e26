"""The feature store: one asset per feature table in ``gold/features``, from one factory.

Each table in ``transforms.features.pipeline.FEATURE_TABLES`` becomes an asset keyed
``gold/features/<name>`` that reads the silver EHR tables it needs and is keyed on
``(visit_id, horizon_datetime, known_at)``: FlowEHR's ``(visit, horizon)`` key, plus
when the row's values were known (bitemporal; see ``transforms.features.horizons``).

How a materialisation works:

1. The stored input fingerprints (``internal/feature_state/<name>``) tell which visits
   the last changelog load touched (``transforms.features.incremental``). A missing
   state, a changed feature version or option, a changed table schema or the
   ``full_rebuild`` run config rebuilds every visit instead.
2. The pure transforms compute rows for those visits only: on the run's shared
   SparkSession (``compute: local``), or as a Databricks job through Pipes
   (``compute: databricks``), which stages its rows as Parquet.
3. One MERGE replaces exactly those visits' rows (or one overwrite for a full rebuild),
   then the new fingerprints are stored. Rows computed on Spark are committed by
   delta-spark from the executors (``assets.features.spark_commit``); rows staged by a
   Pipes job, or bound for an S3 lake, are committed by delta-rs. A crash in between
   recomputes the same visits next time; it never skips one.

The result equals a full rebuild (tested). Every row carries ``feature_version``; the
Delta history gives time travel to any earlier state. Metadata shows the row count,
rows inserted/updated/deleted, the data dictionary as the table schema, column lineage
back to silver, and the silver changelog numbers used. Patient identifiers never
appear: ``person_key`` is the only link between visits.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
from pyspark.sql import DataFrame

from assets.features.settings import FeatureDomain
from assets.features.spark_commit import commit_rows
from assets.governance.k_anonymity_check import k_anonymity_check, k_anonymity_check_spec
from assets.governance.opt_out import OPT_OUT_KEY, opted_out_keys
from assets.keys import silver_key
from assets.metadata import delta_table_metadata
from assets.progress import spark_step_progress
from assets.spark_io import read_spark, to_arrow
from resources.databricks import FeatureJobResource
from resources.delta.spark_tables import spark_writes
from resources.delta.store import DeltaTableStore, TablePath
from transforms.features.dictionary import FeatureOptions, FeatureTableSpec
from transforms.features.incremental import STATE_COLUMNS
from transforms.features.pipeline import (
    FEATURE_TABLES,
    compute_feature_update,
    input_watermarks,
)
from transforms.quality import (
    IDENTIFIER_COLUMN_NAMES,
    duplicate_key_count,
    null_key_count,
    refuse_identifiers,
)

FEATURE_ZONE: tuple[str, ...] = ("gold", "features")
STATE_ZONE: tuple[str, ...] = ("internal", "feature_state")
STAGING_ZONE: tuple[str, ...] = ("internal", "feature_staging")
NO_IDENTIFIERS_CHECK = "no_patient_identifiers"
KEY_CHECK = "feature_key_unique_not_null"
# Every name the pre-write guard refuses (NHS number, MRN, names, DOB, postcode, patient id).
IDENTIFIER_COLUMNS: frozenset[str] = IDENTIFIER_COLUMN_NAMES
_ARROW_TYPES: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "int": pa.int32(),
    "double": pa.float64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
STATE_SCHEMA = pa.schema(
    [(name, pa.string() if name == "signature" else pa.int64()) for name in STATE_COLUMNS]
)


def feature_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([*FEATURE_ZONE, name])


def state_path(name: str) -> TablePath:
    return (*STATE_ZONE, name)


DEMOGRAPHICS = feature_key("patient_demographics")


def feature_options(settings: FeatureDomain) -> FeatureOptions:
    """The feature settings as the transforms take them."""
    return FeatureOptions(
        version=settings.features.version,
        spo2_scale=settings.features.spo2_scale,
        horizon_grid_hours=settings.features.horizon_grid_hours,
        k_anonymity=settings.governance.k_anonymity.k,
    )


def arrow_schema(spec: FeatureTableSpec) -> pa.Schema:
    """The Arrow schema the data dictionary declares (what gold tables hold)."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type]) for c in spec.columns])


def dictionary_schema(spec: FeatureTableSpec) -> dg.TableSchema:
    """The data dictionary as a Dagster table schema, descriptions included."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=c.name, type=c.type, description=f"[{c.role}] {c.description}")
            for c in spec.columns
        ]
    )


def column_lineage(spec: FeatureTableSpec) -> dg.TableColumnLineage:
    """Each feature column's silver source columns, from the data dictionary."""
    return dg.TableColumnLineage(
        deps_by_column={
            c.name: [
                dg.TableColumnDep(asset_key=silver_key(table), column_name=column)
                for table, column in c.sources
            ]
            for c in spec.columns
            if c.sources
        }
    )


class FeatureBuildConfig(dg.Config):
    """Run configuration of a feature asset."""

    full_rebuild: bool = False


@dataclasses.dataclass
class ComputedUpdate:
    """A feature table's update: its rows as a Spark DataFrame (computed on this run's
    session, committed by delta-spark) or as Arrow (staged by a Pipes job); the visits
    and fingerprints as Arrow."""

    rows: pa.Table | DataFrame
    changed_visits: pa.Table
    state: pa.Table
    full_rebuild: bool
    input_changelog_numbers: dict[str, int]
    compute_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


Compute = Callable[
    [dg.AssetExecutionContext, FeatureTableSpec, FeatureOptions, bool], ComputedUpdate
]


def compute_in_process(
    context: dg.AssetExecutionContext,
    spec: FeatureTableSpec,
    options: FeatureOptions,
    full_rebuild: bool,
) -> ComputedUpdate:
    """Run the transforms on this run's shared SparkSession."""
    delta: DeltaTableStore = context.resources.delta
    session = context.resources.spark.session
    inputs = {name: read_spark(session, delta, silver_key(name).path) for name in spec.inputs}
    state = state_path(spec.name)
    previous = read_spark(session, delta, state) if delta.exists(state) else None
    opted_out = read_spark(session, delta, OPT_OUT_KEY.path) if opted_out_keys(delta) else None
    update = compute_feature_update(
        spec, inputs, previous, options, full_rebuild=full_rebuild, opted_out=opted_out
    )
    return ComputedUpdate(
        rows=update.rows,
        changed_visits=pa.table({"visit_id": pa.array([], pa.int64())})
        if update.full_rebuild
        else to_arrow(update.changed_visits),
        state=to_arrow(update.state),
        full_rebuild=update.full_rebuild,
        input_changelog_numbers=input_watermarks(inputs, spec.inputs),
        compute_metadata={"compute": "local spark"},
    )


def compute_with_pipes(
    context: dg.AssetExecutionContext,
    spec: FeatureTableSpec,
    options: FeatureOptions,
    full_rebuild: bool,
) -> ComputedUpdate:
    """Run the transforms as an external job through Pipes and read its staged output."""
    delta: DeltaTableStore = context.resources.delta
    jobs: FeatureJobResource = context.resources.feature_jobs
    staging = (*STAGING_ZONE, spec.name, context.run_id)
    output = {part: delta.uri((*staging, part)) for part in ("rows", "changed_visits", "state")}
    state = state_path(spec.name)
    extras = {
        "feature_table": spec.name,
        "options": dataclasses.asdict(options),
        "full_rebuild": full_rebuild,
        "inputs": {name: jobs.input_location(delta, silver_key(name).path) for name in spec.inputs},
        "state": jobs.input_location(delta, state) if delta.exists(state) else None,
        "opted_out": jobs.input_location(delta, OPT_OUT_KEY.path)
        if opted_out_keys(delta)
        else None,
        "output": output,
    }
    try:
        invocation = jobs.run_feature_job(context, task_key=f"features_{spec.name}", extras=extras)
        reports = [m for m in invocation.get_custom_messages() if isinstance(m, dict)]
        if not reports:
            raise RuntimeError(f"the {spec.name} feature job reported no result")
        summary = reports[-1]
        computed = ComputedUpdate(
            rows=read_staged(delta, output["rows"]),
            changed_visits=read_staged(delta, output["changed_visits"]),
            state=read_staged(delta, output["state"]),
            full_rebuild=bool(summary["full_rebuild"]),
            input_changelog_numbers={
                str(k): int(v) for k, v in dict(summary["input_changelog_numbers"]).items()
            },
            compute_metadata={"compute": "pipes", **dict(invocation.metadata)},
        )
    finally:
        remove_staged(delta, staging)
    if computed.rows.num_rows != int(summary["rows"]):
        raise RuntimeError(
            f"{spec.name}: the job reported {summary['rows']} rows but staged "
            f"{computed.rows.num_rows}"
        )
    return computed


def read_staged(delta: DeltaTableStore, uri: str) -> pa.Table:
    """A Parquet directory written by the job (``_SUCCESS`` and hidden files skipped)."""
    dataset = pa_ds.dataset("", format="parquet", filesystem=delta.storage.filesystem(uri))
    return dataset.to_table()


def remove_staged(delta: DeltaTableStore, staging: TablePath) -> None:
    """Delete a job's staging directory once its rows are committed (or failed)."""
    *parent, name = staging
    filesystem = delta.storage.filesystem(delta.uri(parent))
    if filesystem.get_file_info(name).type != pa_fs.FileType.NotFound:
        filesystem.delete_dir(name)


def needs_full_rebuild(delta: DeltaTableStore, spec: FeatureTableSpec) -> bool:
    """True when the stored table's columns differ from the data dictionary's."""
    table = feature_key(spec.name).path
    if not delta.exists(table):
        return True
    stored = pa.schema(delta.table(table).schema().to_arrow())
    declared = arrow_schema(spec)
    return [(f.name, str(f.type)) for f in stored] != [(f.name, str(f.type)) for f in declared]


def commit_update(
    delta: DeltaTableStore, spec: FeatureTableSpec, computed: ComputedUpdate
) -> dict[str, int]:
    """Write the update to ``gold/features`` and then store the new fingerprints.

    Returns:
        ``rows_inserted``, ``rows_updated``, ``rows_deleted`` and ``visits_recomputed``.

    Raises:
        IdentifierLeakError: when the rows carry an identifier column or NHS numbers;
            nothing is written then.
    """
    table = feature_key(spec.name).path
    state = computed.state.select(STATE_SCHEMA.names).cast(STATE_SCHEMA)
    visits = computed.changed_visits.column("visit_id").to_pylist()
    if isinstance(computed.rows, DataFrame) and spark_writes(delta.uri(table)):
        counts = commit_rows(
            delta,
            spec,
            table,
            computed.rows,
            full_rebuild=computed.full_rebuild,
            visits=visits,
        )
        counts["visits_recomputed"] = state.num_rows if computed.full_rebuild else len(visits)
        if not computed.full_rebuild and not visits:
            return counts  # nothing changed: no new version of either table
        delta.overwrite(state_path(spec.name), state)
        return counts
    rows_in = to_arrow(computed.rows) if isinstance(computed.rows, DataFrame) else computed.rows
    rows = rows_in.select(arrow_schema(spec).names).cast(arrow_schema(spec))
    # Before the commit: the blocking check after it would find the column already published.
    refuse_identifiers(rows, destination="/".join(table))
    if computed.full_rebuild:
        previous = delta.table(table).count() if delta.exists(table) else 0
        delta.overwrite(table, rows)
        counts = {
            "rows_inserted": rows.num_rows,
            "rows_updated": 0,
            "rows_deleted": previous,
            "visits_recomputed": state.num_rows,
        }
    else:
        metrics = delta.sync(table, rows, keys=spec.keys, group_column="visit_id", groups=visits)
        counts = {
            "rows_inserted": metrics.inserted,
            "rows_updated": metrics.updated,
            "rows_deleted": metrics.deleted,
            "visits_recomputed": len(visits),
        }
        if not visits:
            return counts  # nothing changed: no new version of either table
    delta.overwrite(state_path(spec.name), state)
    return counts


def key_check(delta: DeltaTableStore, spec: FeatureTableSpec) -> dg.AssetCheckResult:
    keys = delta.read(feature_key(spec.name).path, columns=list(spec.keys))
    duplicates = duplicate_key_count(keys, list(spec.keys))
    nulls = null_key_count(keys, list(spec.keys))
    return dg.AssetCheckResult(
        check_name=KEY_CHECK,
        passed=duplicates == 0 and nulls == 0,
        metadata={"duplicate_keys": duplicates, "null_keys": nulls, "rows": keys.num_rows},
    )


def identifier_check(columns: Sequence[str]) -> dg.AssetCheckResult:
    found = sorted(IDENTIFIER_COLUMNS & set(columns))
    return dg.AssetCheckResult(
        check_name=NO_IDENTIFIERS_CHECK,
        passed=not found,
        metadata={"identifier_columns_found": len(found)},
    )


def materialise_feature_table(
    context: dg.AssetExecutionContext,
    spec: FeatureTableSpec,
    options: FeatureOptions,
    config: FeatureBuildConfig,
    compute: Compute,
    k: int = 10,
) -> dg.MaterializeResult:
    """Compute, commit and describe one feature table."""
    delta: DeltaTableStore = context.resources.delta
    full = config.full_rebuild or needs_full_rebuild(delta, spec)
    with spark_step_progress(context) as progress:
        progress.stage("computing the update")
        computed = compute(context, spec, options, full)
        progress.stage("committing")
        counts = commit_update(delta, spec, computed)
    context.log.info(
        f"{spec.name}: {'full rebuild' if computed.full_rebuild else 'incremental'}, "
        f"{counts['visits_recomputed']} visits recomputed"
    )
    table = feature_key(spec.name).path
    changelog = computed.input_changelog_numbers
    metadata: dict[str, Any] = {
        **delta_table_metadata(delta, table),
        "dagster/column_schema": dictionary_schema(spec),
        "dagster/column_lineage": column_lineage(spec),
        **counts,
        "update_mode": "full" if computed.full_rebuild else "incremental",
        "feature_version": options.version,
        "feature_options": options.signature,
        "source_changelog_numbers": dg.MetadataValue.json(changelog),
        "source_changelog_number": max(changelog.values(), default=0),
        **computed.compute_metadata,
    }
    columns = (
        computed.rows.columns
        if isinstance(computed.rows, DataFrame)
        else computed.rows.column_names
    )
    checks = [identifier_check(columns), key_check(delta, spec)]
    if spec.quasi_identifiers:
        checks.append(k_anonymity_check(delta, table, spec.quasi_identifiers, k))
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


def build_feature_table_defs(
    *, spec: FeatureTableSpec, settings: FeatureDomain, compute: Compute | None = None
) -> dg.Definitions:
    """The asset of one feature table.

    Args:
        spec: the feature table.
        settings: feature options and ``compute``.
        compute: where the transforms run; default from ``settings.compute``
            (in process on local Spark, or a Pipes job on Databricks).
    """
    key = feature_key(spec.name)
    options = feature_options(settings)
    k = settings.governance.k_anonymity.k
    on_databricks = settings.compute == "databricks"
    run = compute or (compute_with_pipes if on_databricks else compute_in_process)
    resources = {"delta", "feature_jobs" if run is compute_with_pipes else "spark"}

    @dg.asset(
        key=key,
        deps=[*(silver_key(name) for name in spec.inputs), OPT_OUT_KEY],
        description=spec.description,
        group_name="features",
        kinds={"spark", "delta", *(("databricks",) if on_databricks else ())},
        owners=["team:data-engineering"],
        tags={"zone": "gold", "published": "researchers"},
        metadata={
            "dagster/column_schema": dictionary_schema(spec),
            "horizon": spec.horizon,
            "feature_version": options.version,
            "scope": spec.scope,
        },
        code_version=options.signature,
        required_resource_keys=resources,
        check_specs=[
            dg.AssetCheckSpec(
                NO_IDENTIFIERS_CHECK,
                asset=key,
                blocking=True,
                description="No patient identifier column (NHS number, MRN, name, full date "
                "of birth, postcode, source patient id) reached this published table.",
            ),
            dg.AssetCheckSpec(
                KEY_CHECK,
                asset=key,
                blocking=True,
                description=f"({', '.join(spec.keys)}) is unique and never null.",
            ),
            *([k_anonymity_check_spec(key, k)] if spec.quasi_identifiers else []),
        ],
        op_tags={"dagster/concurrency_key": f"delta:{'/'.join(key.path)}"},
    )
    def _feature_table(
        context: dg.AssetExecutionContext, config: FeatureBuildConfig
    ) -> dg.MaterializeResult:
        return materialise_feature_table(context, spec, options, config, run, k)

    return dg.Definitions(assets=[_feature_table])


def build_defs(
    settings: FeatureDomain, *, tables: Mapping[str, FeatureTableSpec] | None = None
) -> dg.Definitions:
    """Feature-store assets, one per feature table."""
    specs = FEATURE_TABLES if tables is None else tables
    return dg.Definitions.merge(
        *[build_feature_table_defs(spec=spec, settings=settings) for spec in specs.values()]
    )
