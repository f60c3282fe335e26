"""delta-spark and delta-rs on one table: each reads every commit of the other (appends,
MERGE, OPTIMIZE, VACUUM), both read the same rows, and neither adds a table feature the
other cannot handle. Also the Spark sync's diff: a no-op commits nothing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from resources.delta import spark_tables
from resources.delta.store import DeltaTableStore, Matched
from resources.spark import build_local_spark_session
from tests.lakes import local_store

# Engine interoperability on real Spark, over a minute: make test-cluster runs it.
pytestmark = pytest.mark.cluster

TABLE = ("gold", "features", "compat")


@pytest.fixture(scope="module")
def spark() -> SparkSession:
    session = build_local_spark_session("local[1]", "delta-compat", {})
    session.conf.set("spark.sql.shuffle.partitions", "1")
    # VACUUM RETAIN 0 HOURS below: the files it may delete are all superseded.
    session.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    return session


def rows(ids: list[int], value: float, visit: int = 1) -> pa.Table:
    return pa.table(
        {
            "visit_id": pa.array([visit] * len(ids), pa.int64()),
            "id": pa.array(ids, pa.int64()),
            "value": pa.array([value] * len(ids), pa.float64()),
            "note": pa.array([f"n{i}" for i in ids], pa.string()),
        }
    )


def both_read(spark: SparkSession, store: DeltaTableStore) -> list[tuple[object, ...]]:
    """The rows, identical through delta-rs and delta-spark, and a protocol both write."""
    uri = store.uri(TABLE)
    by_rs = sorted(tuple(r.values()) for r in store.read(TABLE).to_pylist())
    by_spark = sorted(tuple(r) for r in spark_tables.read(spark, store.storage, uri).collect())
    assert by_rs == by_spark
    protocol = DeltaTable(uri).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2), protocol
    return by_rs


def test_each_engine_reads_the_others_commits(spark: SparkSession, lake: Path) -> None:
    store = local_store(lake)
    uri = store.uri(TABLE)
    sql = f"delta.`{uri}`"
    store.overwrite(TABLE, rows([1, 2, 3], 1.0))  # delta-rs creates
    spark.createDataFrame(rows([4], 1.0).to_pandas()).write.format("delta").mode("append").save(uri)
    store.merge(TABLE, rows([1, 5], 2.0), keys=["id"], matched=(Matched(),))  # delta-rs MERGE
    assert [r[2] for r in both_read(spark, store) if r[1] in (1, 4, 5)] == [2.0, 1.0, 2.0]

    spark.createDataFrame(rows([2, 6], 3.0).to_pandas()).createOrReplaceTempView("incoming")
    spark.sql(
        f"MERGE INTO {sql} t USING incoming s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT * "
        "WHEN NOT MATCHED BY SOURCE AND t.id = 3 THEN DELETE"
    )
    after_spark_merge = both_read(spark, store)
    assert [r[1] for r in after_spark_merge] == [1, 2, 4, 5, 6]
    assert store.table(TABLE).history(1)[0]["operation"] == "MERGE"

    spark.sql(f"OPTIMIZE {sql}")
    store.append(TABLE, rows([7], 4.0))
    store.optimize(TABLE)
    assert store.table(TABLE).history(1)[0]["operation"] == "OPTIMIZE"
    compacted = both_read(spark, store)
    assert len(compacted) == 6

    spark.sql(f"VACUUM {sql} RETAIN 0 HOURS")
    assert len(store.table(TABLE).file_uris()) == 1
    store.vacuum(TABLE, retention_hours=0)
    spark.createDataFrame(rows([8], 5.0).to_pandas()).write.format("delta").mode("append").save(uri)
    operations = [h["operation"] for h in store.table(TABLE).history()]
    assert {"MERGE", "OPTIMIZE", "VACUUM START", "VACUUM END", "WRITE"} <= set(operations)
    assert len(both_read(spark, store)) == 7


def test_a_spark_sync_commits_only_changes(spark: SparkSession, lake: Path) -> None:
    store = local_store(lake)
    uri = store.uri(TABLE)

    def frame(table: pa.Table):
        return spark.createDataFrame(table.to_pandas())

    first = pa.concat_tables([rows([1, 2], 1.0, visit=1), rows([3], 1.0, visit=2)])
    spark_tables.overwrite(spark, store.storage, uri, frame(first))
    version = store.table(TABLE).version()
    # Spark created the table with the features delta-rs cannot write switched off.
    configuration = store.table(TABLE).metadata().configuration
    assert configuration["delta.enableDeletionVectors"] == "false"
    assert configuration["delta.enableRowTracking"] == "false"

    unchanged = spark_tables.sync_groups(
        spark,
        store.storage,
        uri,
        frame(rows([1, 2], 1.0)),
        keys=["id"],
        column="visit_id",
        groups=[1],
    )
    assert (unchanged.inserted, unchanged.updated, unchanged.deleted) == (0, 0, 0)
    assert store.table(TABLE).version() == version  # nothing committed

    # Visit 1 now holds ids 1 (changed) and 4 (new); id 2 is gone; visit 2 is untouched.
    update = pa.concat_tables([rows([1], 9.0), rows([4], 1.0)])
    metrics = spark_tables.sync_groups(
        spark, store.storage, uri, frame(update), keys=["id"], column="visit_id", groups=[1]
    )
    assert (metrics.inserted, metrics.updated, metrics.deleted) == (1, 1, 1)
    assert [(r[1], r[2]) for r in both_read(spark, store)] == [(1, 9.0), (4, 1.0), (3, 1.0)]
    history = store.table(TABLE).history(1)[0]
    assert history["operation"] == "MERGE"
    assert int(history["operationMetrics"]["numTargetRowsUpdated"]) == 1
    assert store.table(TABLE).version() == version + 1


def test_writes_to_s3_stay_with_delta_rs() -> None:
    assert spark_tables.spark_writes("/lake/gold/features/x")
    assert not spark_tables.spark_writes("s3://bucket/lake/gold/features/x")
    path, options = spark_tables.location(local_store("/lake").storage, "/lake/gold/features/x")
    assert (path, options) == ("/lake/gold/features/x", {})
