"""Committing a feature table's rows from Spark with delta-spark: the rows never reach the
driver.

The same guarantees as the delta-rs commit in ``tables.commit_update``: the columns and
types the data dictionary declares, identifiers refused before anything is written, a
full rebuild as one overwrite, an incremental update as one MERGE that replaces exactly
the changed visits' rows, and no commit at all when those rows are unchanged.
"""

from collections.abc import Sequence

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from resources.delta import spark_tables
from resources.delta.store import DeltaTableStore, TablePath, logged_row_count
from transforms.features.dictionary import FeatureTableSpec
from transforms.quality import NHS_NUMBER_SHAPE, nhs_number_valued_columns, refuse_identifiers


def refuse_identifiers_in_spark(rows: DataFrame, *, destination: str) -> None:
    """``refuse_identifiers`` on a DataFrame: the executors find the rows holding a value
    shaped like an NHS number, and only those rows' text columns are checked here.

    Raises:
        IdentifierLeakError: as ``refuse_identifiers`` does.
    """
    names = pa.table({name: pa.nulls(0) for name in rows.columns})
    refuse_identifiers(names, destination=destination, values=False)
    text = [f.name for f in rows.schema.fields if f.dataType.typeName() == "string"]
    if not text:
        return
    shaped = F.lit(False)
    for name in text:
        shaped = shaped | F.coalesce(F.col(name).rlike(NHS_NUMBER_SHAPE), F.lit(False))
    candidates = rows.where(shaped).select(*text).toArrow()
    found = nhs_number_valued_columns(candidates) if candidates.num_rows else []
    if found:
        refuse_identifiers(candidates.select(found), destination=destination)


def declared(rows: DataFrame, spec: FeatureTableSpec) -> DataFrame:
    """The dictionary's columns in its order, cast to its types."""
    return rows.select(*[F.col(c.name).cast(c.type).alias(c.name) for c in spec.columns])


def commit_rows(
    delta: DeltaTableStore,
    spec: FeatureTableSpec,
    table: TablePath,
    rows: DataFrame,
    *,
    full_rebuild: bool,
    visits: Sequence[int],
) -> dict[str, int]:
    """Write a feature table from Spark (an overwrite, or a MERGE of ``visits``).

    Returns:
        ``rows_inserted``, ``rows_updated`` and ``rows_deleted``.
    """
    uri = delta.uri(table)
    destination = "/".join(table)
    # Computed once: the identifier scan, the diff and the write each read these rows.
    rows = declared(rows, spec).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        refuse_identifiers_in_spark(rows, destination=destination)
        session = rows.sparkSession
        if full_rebuild:
            previous = delta.table(table).count() if delta.exists(table) else 0
            spark_tables.overwrite(session, delta.storage, uri, rows)
            return {
                "rows_inserted": logged_row_count(delta.table(table)),
                "rows_updated": 0,
                "rows_deleted": previous,
            }
        metrics = spark_tables.sync_groups(
            session, delta.storage, uri, rows, keys=spec.keys, column="visit_id", groups=visits
        )
        return {
            "rows_inserted": metrics.inserted,
            "rows_updated": metrics.updated,
            "rows_deleted": metrics.deleted,
        }
    finally:
        rows.unpersist()
