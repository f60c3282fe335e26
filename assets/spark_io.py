"""Read Delta tables into Spark, and collect small Spark results as Arrow.

Spark reads every Delta table natively with delta-spark (``spark.read.format("delta")``,
``s3a://`` on S3), whichever engine wrote it: the executors read the files, the driver
only the log. Feature tables are written from Spark too (``assets.features.spark_commit``);
other tables' rows go back to delta-rs as Arrow.

EHR bronze tables are appended to by changelog loads, so they hold superseded rows:
``read_bronze_current`` is how Spark reads one (``assets.ehr.bronze_view``
defines the current view).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from assets.ehr.bronze_view import LOAD_COLUMN, current_mask
from resources.delta import spark_tables
from resources.delta.store import DeltaTableStore, TablePath


def read_spark(spark: SparkSession, delta: DeltaTableStore, table: TablePath) -> DataFrame:
    """A Delta table's current snapshot as a Spark DataFrame, read by the executors."""
    return spark_tables.read(spark, delta.storage, delta.uri(table))


def read_bronze_current(
    spark: SparkSession, delta: DeltaTableStore, table: TablePath, primary_key: Sequence[str]
) -> DataFrame:
    """An EHR bronze table's current rows (each key's newest load), without the load column.

    Whether any row is superseded is decided from the key and load columns alone (a
    column-pruned Arrow read), so a compacted table costs Spark nothing extra.
    """
    df = read_spark(spark, delta, table)
    if LOAD_COLUMN not in df.columns:
        return df
    keys = delta.read(table, columns=[*primary_key, LOAD_COLUMN])
    if current_mask(keys, primary_key) is None:
        return df.drop(LOAD_COLUMN)
    load = F.coalesce(F.col(LOAD_COLUMN), F.lit(-1))
    newest = F.max(load).over(Window.partitionBy(*primary_key))
    # A row without a key supersedes nothing and is never superseded (as in a MERGE).
    no_key = F.lit(False)
    for column in primary_key:
        no_key = no_key | F.col(column).isNull()
    return (
        df.withColumn("_newest_load", newest)
        .where(no_key | (load == F.col("_newest_load")))
        .drop("_newest_load", LOAD_COLUMN)
    )


def to_arrow(df: DataFrame) -> pa.Table:
    """Collect a Spark result as Arrow, with Spark's types kept."""
    return df.toArrow()
