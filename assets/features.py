"""The feature store, computed with Spark from silver tables.

Feature tables in ``gold/features`` are keyed on the hospital visit with a
``horizon_datetime`` and are what researchers read.
"""

import dagster as dg

from assets.metadata import delta_table_metadata
from assets.silver import SILVER_PATIENTS, SILVER_VISITS
from assets.spark_io import read_spark, to_arrow
from flowehr_pipelines.config import Settings
from resources.delta_store import DeltaTableStore
from resources.spark import SparkResource
from transforms.features.demographics import build_demographics

DEMOGRAPHICS = dg.AssetKey(["gold", "features", "patient_demographics"])
NO_IDENTIFIERS_CHECK = "no_patient_identifiers"


@dg.asset(
    key=DEMOGRAPHICS,
    deps=[SILVER_PATIENTS, SILVER_VISITS],
    group_name="features",
    kinds={"spark", "delta"},
    owners=["team:data-engineering"],
    tags={"zone": "gold", "published": "researchers"},
    check_specs=[dg.AssetCheckSpec(NO_IDENTIFIERS_CHECK, asset=DEMOGRAPHICS, blocking=True)],
)
def patient_demographics(spark: SparkResource, delta: DeltaTableStore) -> dg.MaterializeResult:
    """Age band, sex, postcode district and ethnicity of the patient at each visit's admission."""
    session = spark.session
    features = build_demographics(
        read_spark(session, delta, SILVER_VISITS.path),
        read_spark(session, delta, SILVER_PATIENTS.path),
    )
    data = to_arrow(features)
    delta.overwrite(DEMOGRAPHICS.path, data)
    forbidden = sorted(
        {
            "nhs_number",
            "mrn",
            "given_name",
            "family_name",
            "date_of_birth",
            "postcode",
            "patient_id",
        }
        & set(data.column_names)
    )
    return dg.MaterializeResult(
        metadata=delta_table_metadata(delta, DEMOGRAPHICS.path),
        check_results=[
            dg.AssetCheckResult(
                check_name=NO_IDENTIFIERS_CHECK,
                passed=not forbidden,
                metadata={"identifier_columns_found": len(forbidden)},
            )
        ],
    )


def build_defs(settings: Settings) -> dg.Definitions:
    """Feature-store assets."""
    return dg.Definitions(assets=[patient_demographics])
