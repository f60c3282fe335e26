"""Silver EHR tables: cleaned, typed and pseudonymised with Spark.

One factory, ``build_silver_table_asset``, builds every silver table from a small
``SilverTable`` spec: which transform cleans it, which silver parents it links to,
how its columns derive from bronze (column lineage) and what its quality checks
expect. The five tables differ only in those specs.

Each run recomputes a table in full from bronze's current view (changelog loads append
to bronze, so each key's rows from its newest load: ``read_bronze_current``), which on
Spark is cheap at hospital scale and equal to a full rebuild by construction, and
writes it as a diff through ``DeltaTableStore.sync``: one MERGE that touches only rows
whose values changed and deletes keys that disappeared (tombstoned in the source, or
newly quarantined). An unchanged input commits nothing, so re-running is safe, and each
table's change data feed lists exactly the rows that changed, which incremental feature
builds can read.

Rows that fail validation go to ``bronze/<source>/quarantine_<table>`` with a reason
and are counted in metadata by reason, rather than being dropped.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from assets.ehr import quality_checks
from assets.ehr.settings import EhrDomain
from assets.keys import CLINICAL_SOURCE, PDS_VERIFICATION, bronze_key, silver_key
from assets.metadata import delta_table_metadata
from assets.progress import spark_step_progress
from assets.spark_io import read_bronze_current, read_spark, to_arrow
from resources.delta.store import DeltaTableStore
from resources.pseudonymiser import Pseudonymiser
from resources.spark import SparkResource
from transforms.ehr_silver import (
    CONSCIOUSNESS_LEVELS,
    EARLIEST_BIRTH_DATE,
    VITAL_SIGN_RANGES,
    Split,
    clean_diagnoses,
    clean_lab_results,
    clean_observations,
    clean_patients,
    clean_visits,
)
from transforms.expectations import Bound
from transforms.pds_silver import with_pds_outcomes

SILVER_PATIENTS = silver_key("patients")
SILVER_VISITS = silver_key("visits")
SILVER_OBSERVATIONS = silver_key("observations")
SILVER_LAB_RESULTS = silver_key("lab_results")
SILVER_DIAGNOSES = silver_key("diagnoses")


@dataclass(frozen=True)
class SilverInputs:
    """What a cleaning transform may read: bronze and silver tables, the key, the day."""

    spark: SparkSession
    delta: DeltaTableStore
    pseudonymiser: Pseudonymiser
    as_of: date

    def bronze(self, table: str) -> DataFrame:
        """The bronze table's current rows: changelog loads append, superseding older rows."""
        return read_bronze_current(
            self.spark, self.delta, bronze_key(table).path, [_bronze_primary_key(table)]
        )

    def silver(self, table: str) -> DataFrame:
        return read_spark(self.spark, self.delta, silver_key(table).path)

    def patients(self) -> DataFrame:
        """Bronze patients with PDS's outcomes applied, once PDS has verified any."""
        pds = PDS_VERIFICATION.path
        outcomes = read_spark(self.spark, self.delta, pds) if self.delta.exists(pds) else None
        return with_pds_outcomes(self.bronze("patients"), outcomes)

    @property
    def key(self) -> bytes:
        return self.pseudonymiser.key_bytes()


Lineage = Mapping[str, tuple[tuple[dg.AssetKey, str], ...]]


@dataclass(frozen=True)
class SilverTable:
    """Everything that makes one silver table different from the others."""

    name: str
    key: str
    description: str
    clean: Callable[[SilverInputs], Split]
    parents: tuple[str, ...] = ()
    lineage: Lineage = field(default_factory=dict)
    """Columns not derived from the same-named bronze column."""
    ranges: Mapping[str, tuple[Bound, Bound]] = field(default_factory=dict)
    allowed_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    event_column: str | None = None
    """The newest value of this column shows how fresh the table is."""


def _from_visits() -> Lineage:
    return {"person_key": ((SILVER_VISITS, "person_key"),)}


SILVER_TABLES: tuple[SilverTable, ...] = (
    SilverTable(
        name="patients",
        key="patient_id",
        description=(
            "Patients with a keyed pseudonym for the NHS number, birth year and postcode "
            "district; invalid NHS numbers and impossible birth dates are quarantined."
        ),
        clean=lambda i: clean_patients(i.patients(), key=i.key, as_of=i.as_of),
        lineage={
            "person_key": ((bronze_key("patients"), "nhs_number"),),
            "birth_year": ((bronze_key("patients"), "date_of_birth"),),
            "postcode_district": ((bronze_key("patients"), "postcode"),),
            "source_updated_at": ((bronze_key("patients"), "updated_at"),),
        },
        ranges={"birth_year": (EARLIEST_BIRTH_DATE.year, None)},
    ),
    SilverTable(
        name="visits",
        key="visit_id",
        description=(
            "Typed hospital visits with length of stay, linked to their patient's "
            "pseudonym; impossible times and orphans are quarantined."
        ),
        clean=lambda i: clean_visits(i.bronze("visits"), i.silver("patients"), as_of=i.as_of),
        parents=("patients",),
        lineage={
            "person_key": ((SILVER_PATIENTS, "person_key"),),
            "length_of_stay_hours": (
                (bronze_key("visits"), "admission_datetime"),
                (bronze_key("visits"), "discharge_datetime"),
            ),
        },
        ranges={"length_of_stay_hours": (0, None)},
        event_column="admission_datetime",
    ),
    SilverTable(
        name="observations",
        key="observation_id",
        description=(
            "Vital-sign observation sets per visit with the patient's pseudonym; "
            "physiologically impossible readings and orphans are quarantined."
        ),
        clean=lambda i: clean_observations(
            i.bronze("observations"), i.silver("visits"), as_of=i.as_of
        ),
        parents=("visits",),
        lineage=_from_visits(),
        ranges=dict(VITAL_SIGN_RANGES),
        allowed_values={"consciousness": CONSCIOUSNESS_LEVELS},
        event_column="observed_at",
    ),
    SilverTable(
        name="lab_results",
        key="lab_result_id",
        description=(
            "Laboratory results per visit with the patient's pseudonym; negative values, "
            "inverted reference ranges and orphans are quarantined."
        ),
        clean=lambda i: clean_lab_results(
            i.bronze("lab_results"), i.silver("visits"), as_of=i.as_of
        ),
        parents=("visits",),
        lineage=_from_visits(),
        ranges={"value": (0, None)},
        event_column="collected_at",
    ),
    SilverTable(
        name="diagnoses",
        key="diagnosis_id",
        description=(
            "ICD-10 coded diagnoses per visit with the patient's pseudonym; clinical free "
            "text is dropped and malformed codes and orphans are quarantined."
        ),
        clean=lambda i: clean_diagnoses(i.bronze("diagnoses"), i.silver("visits"), as_of=i.as_of),
        parents=("visits",),
        lineage=_from_visits(),
        event_column="recorded_at",
    ),
)


def _bronze_primary_key(table: str) -> str:
    return next(spec.key for spec in SILVER_TABLES if spec.name == table)


def column_lineage(table: SilverTable, columns: list[str]) -> dg.TableColumnLineage:
    """Each silver column's bronze (or parent silver) source columns."""
    source = bronze_key(table.name)
    return dg.TableColumnLineage(
        deps_by_column={
            column: [
                dg.TableColumnDep(asset_key=asset, column_name=name)
                for asset, name in table.lineage.get(column, ((source, column),))
            ]
            for column in columns
        }
    )


def reason_counts(quarantine: pa.Table) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason in quarantine.column("reason").to_pylist():
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items()))


def write_split(
    delta: DeltaTableStore,
    table: SilverTable,
    split: Split,
    stage: Callable[[str], object] = lambda _: None,
) -> dict[str, Any]:
    """Sync the clean rows into silver and the rest into quarantine; return metadata.

    ``stage`` names each phase as it starts, for the step's progress lines.
    """
    key = silver_key(table.name)
    stage("computing clean rows on Spark")
    clean = to_arrow(split.clean)
    stage("computing quarantined rows on Spark")
    quarantine = to_arrow(split.quarantine)
    stage("merging into silver")
    metrics = delta.sync(key.path, clean, keys=[table.key])
    stage("syncing quarantine")
    # A source can repeat a key (all copies are quarantined), so the change number is
    # part of a quarantine row's identity.
    delta.sync(
        ("bronze", CLINICAL_SOURCE, f"quarantine_{table.name}"),
        quarantine,
        keys=["record_key", "change_seq"],
    )
    return {
        **delta_table_metadata(delta, key.path),
        "rows_inserted": metrics.inserted,
        "rows_updated": metrics.updated,
        "rows_deleted": metrics.deleted,
        "quarantined_rows": quarantine.num_rows,
        "quarantine_reasons": dg.MetadataValue.json(reason_counts(quarantine)),
        "dagster/column_lineage": column_lineage(table, clean.column_names),
    }


def build_silver_table_asset(
    *, table: SilverTable, extra_deps: Sequence[dg.AssetKey] = ()
) -> dg.AssetsDefinition:
    """The silver asset for one table spec (``extra_deps``: more inputs, such as PDS)."""

    @dg.asset(
        key=silver_key(table.name),
        deps=[
            bronze_key(table.name),
            *(silver_key(parent) for parent in table.parents),
            *extra_deps,
        ],
        description=table.description,
        group_name="ehr",
        kinds={"spark", "delta"},
        owners=["team:data-engineering"],
        tags={"zone": "silver", "source": CLINICAL_SOURCE},
    )
    def _silver(
        context: dg.AssetExecutionContext,
        spark: SparkResource,
        delta: DeltaTableStore,
        pseudonymiser: Pseudonymiser,
    ) -> dg.MaterializeResult:
        inputs = SilverInputs(spark.session, delta, pseudonymiser, datetime.now(UTC).date())
        with spark_step_progress(context) as progress:
            progress.stage("reading bronze")
            split = table.clean(inputs)
            metadata = write_split(delta, table, split, stage=progress.stage)
        return dg.MaterializeResult(metadata=metadata)

    return _silver


def build_silver_checks(
    table: SilverTable, *, freshness_max_age: timedelta
) -> list[dg.AssetChecksDefinition]:
    """Keys (blocking), plausible values and freshness for one silver table."""
    key = silver_key(table.name)
    checks = [
        quality_checks.build_key_check(
            asset=key, keys=[table.key], required=("person_key", "change_seq")
        )
    ]
    if table.ranges or table.allowed_values:
        checks.append(
            quality_checks.build_range_check(
                asset=key, ranges=table.ranges, allowed_values=table.allowed_values
            )
        )
    if table.event_column:
        checks.append(
            quality_checks.build_freshness_check(
                asset=key, column=table.event_column, max_age=freshness_max_age
            )
        )
    return checks


def build_defs(settings: EhrDomain, *, pds_verified: bool = False) -> dg.Definitions:
    """Silver EHR tables and their data-quality checks (patients after PDS when verified)."""
    max_age = timedelta(days=settings.ehr.freshness_max_age_days)
    pds = {"patients": [PDS_VERIFICATION]} if pds_verified else {}
    return dg.Definitions(
        assets=[
            build_silver_table_asset(table=table, extra_deps=pds.get(table.name, ()))
            for table in SILVER_TABLES
        ],
        asset_checks=[
            check
            for table in SILVER_TABLES
            for check in build_silver_checks(table, freshness_max_age=max_age)
        ],
    )
