"""Silver EHR tables: cleaned, typed and pseudonymised with Spark.

Rows that fail validation go to ``bronze/<source>/quarantine_<table>`` with a reason
(and are counted in metadata) rather than being dropped.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from assets.metadata import delta_table_metadata
from assets.spark_io import read_spark, to_arrow
from flowehr_pipelines.config import Settings
from resources.delta_store import DeltaTableStore
from resources.pseudonymiser import Pseudonymiser
from resources.spark import SparkResource
from transforms.ehr_silver import Split, clean_patients, clean_visits

SOURCE = "ehr"
SILVER_PATIENTS = dg.AssetKey(["silver", SOURCE, "patients"])
SILVER_VISITS = dg.AssetKey(["silver", SOURCE, "visits"])


def _write_split(
    delta: DeltaTableStore, key: dg.AssetKey, split: Split, quarantine_name: str
) -> dict[str, Any]:
    quarantine = to_arrow(split.quarantine)
    delta.overwrite(key.path, to_arrow(split.clean))
    delta.overwrite(("bronze", SOURCE, f"quarantine_{quarantine_name}"), quarantine)
    reasons: dict[str, int] = {}
    for reason in quarantine.column("reason").to_pylist():
        reasons[reason] = reasons.get(reason, 0) + 1
    return {
        **delta_table_metadata(delta, key.path),
        "quarantined_rows": quarantine.num_rows,
        "quarantine_reasons": dg.MetadataValue.json(reasons),
    }


@dg.asset(
    key=SILVER_PATIENTS,
    deps=[dg.AssetKey(["bronze", SOURCE, "patients"])],
    group_name="ehr",
    kinds={"spark", "delta"},
    owners=["team:data-engineering"],
    tags={"zone": "silver"},
)
def silver_patients(
    spark: SparkResource, delta: DeltaTableStore, pseudonymiser: Pseudonymiser
) -> dg.MaterializeResult:
    """Patients with a keyed pseudonym for the NHS number, birth year and postcode district."""
    bronze = read_spark(spark.session, delta, ("bronze", SOURCE, "patients"))
    split = clean_patients(bronze, key=pseudonymiser.key_bytes(), as_of=datetime.now(UTC).date())
    return dg.MaterializeResult(metadata=_write_split(delta, SILVER_PATIENTS, split, "patients"))


@dg.asset(
    key=SILVER_VISITS,
    deps=[dg.AssetKey(["bronze", SOURCE, "visits"]), SILVER_PATIENTS],
    group_name="ehr",
    kinds={"spark", "delta"},
    owners=["team:data-engineering"],
    tags={"zone": "silver"},
)
def silver_visits(spark: SparkResource, delta: DeltaTableStore) -> dg.MaterializeResult:
    """Typed hospital visits linked to their patient's pseudonym; orphans quarantined."""
    session = spark.session
    bronze = read_spark(session, delta, ("bronze", SOURCE, "visits"))
    patients = read_spark(session, delta, SILVER_PATIENTS.path)
    split = clean_visits(bronze, patients, as_of=datetime.now(UTC).date())
    return dg.MaterializeResult(metadata=_write_split(delta, SILVER_VISITS, split, "visits"))


def build_defs(settings: Settings) -> dg.Definitions:
    """Silver EHR tables."""
    return dg.Definitions(assets=[silver_patients, silver_visits])
