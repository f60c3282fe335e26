"""Move tables between delta-rs and Spark.

Local Spark cannot read the delta format itself (its JVM jars are not installable
here), so Spark reads the Parquet files of the table's current snapshot, and writes go
back through delta-rs as Arrow. On S3, where local Spark has no filesystem driver, the
table is read through delta-rs as Arrow instead.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from resources.delta_store import DeltaTableStore, TablePath


def read_spark(spark: SparkSession, delta: DeltaTableStore, table: TablePath) -> DataFrame:
    """A Delta table's current snapshot as a Spark DataFrame."""
    dt = delta.table(table)
    files = dt.file_uris()
    partitioned = bool(dt.metadata().partition_columns)
    if files and not partitioned and not delta.uri(table).startswith("s3://"):
        return spark.read.parquet(*files)
    data = delta.read(table)
    return spark.createDataFrame(data) if data.num_rows else _empty(spark, data.schema)


def _empty(spark: SparkSession, schema: pa.Schema) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame([], from_arrow_schema(schema))


def to_arrow(df: DataFrame) -> pa.Table:
    """Collect a Spark result as Arrow, with Spark's types kept."""
    return df.toArrow()
