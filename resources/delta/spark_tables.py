"""Delta tables through Spark with delta-spark: the feature pipeline's native reads and writes.

The rows stay on the executors: silver is read with ``spark.read.format("delta")`` and a
feature table is overwritten or MERGEd by Spark SQL, so nothing is collected on the
driver. Everything here is plain DataFrame API and Delta SQL, so it works the same on a
local session, a standalone cluster and a Spark Connect server (which needs the same jars
and SQL extension, see ``tests/spark_servers.py``).

delta-rs (``DeltaTableStore``) writes the same tables elsewhere (housekeeping's OPTIMIZE
and VACUUM, the Databricks path, every coordination table), so both engines must read
what the other writes. Delta 4 can enable table features delta-rs 1.6 cannot write
(deletion vectors, row tracking, v2 checkpoints, column mapping, in-commit timestamps,
type widening). ``DELTA_TABLE_DEFAULTS`` switches all of them off for tables Spark
creates, and every write sets them on the session first, since a feature, once in a
table's protocol, cannot be dropped by changing a property.

The jars are installed by ``make install`` into ``<venv>/spark-jars``
(``deploy/spark-jars/pom.xml``); ``FLOWEHR_SPARK_JARS`` names another directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from resources.delta.metrics import WriteMetrics
from resources.delta.storage import LocalStorage, S3Storage

JARS_ENV = "FLOWEHR_SPARK_JARS"
DELTA_SQL_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
_DEFAULTS = "spark.databricks.delta.properties.defaults."
DELTA_TABLE_DEFAULTS: dict[str, str] = {
    # Off: delta-rs 1.6 can read but not write deletion vectors, and cannot write the rest.
    f"{_DEFAULTS}enableDeletionVectors": "false",
    f"{_DEFAULTS}enableRowTracking": "false",
    f"{_DEFAULTS}checkpointPolicy": "classic",
    f"{_DEFAULTS}columnMapping.mode": "none",
    f"{_DEFAULTS}enableInCommitTimestamps": "false",
    f"{_DEFAULTS}enableTypeWidening": "false",
    # Stats as JSON in checkpoints, the form both engines read.
    f"{_DEFAULTS}checkpoint.writeStatsAsJson": "true",
}


class DeltaJarsMissingError(RuntimeError):
    """The delta-spark jars are not installed where the session looks for them."""


def jars_dir() -> Path:
    """Where ``make install`` puts the Spark jars: ``<venv>/spark-jars``."""
    return Path(os.environ.get(JARS_ENV) or Path(sys.prefix) / "spark-jars")


def delta_jars() -> list[Path]:
    """The jars a local session loads for Delta (and s3a://).

    Raises:
        DeltaJarsMissingError: naming the directory and how to fill it.
    """
    directory = jars_dir()
    jars = sorted(directory.glob("*.jar"))
    if not any(j.name.startswith("delta-spark_") for j in jars):
        raise DeltaJarsMissingError(
            f"no delta-spark jars in {directory}: run `make install` (it fetches them with "
            f"Maven) or set {JARS_ENV}"
        )
    return jars


def session_conf() -> dict[str, str]:
    """The conf a local session needs for Delta: the jars, the SQL extension and catalog,
    and table-feature defaults both writers can handle."""
    jars = ",".join(str(j) for j in delta_jars())
    return {
        "spark.jars": jars,
        **DELTA_SQL_CONF,
        **DELTA_TABLE_DEFAULTS,
        # Tasks that replay a table's log: 50 by default, which on a small lake's logs
        # is scheduling overhead only (a larger lake sets it in spark.conf).
        "spark.databricks.delta.snapshotPartitions": "4",
    }


def location(storage: LocalStorage | S3Storage, uri: str) -> tuple[str, dict[str, str]]:
    """The path Spark opens for a table URI, and the Hadoop options it needs (s3a)."""
    if not uri.startswith("s3://"):
        return uri, {}
    options = {"fs.s3a.endpoint.region": storage.region} if isinstance(storage, S3Storage) else {}
    if isinstance(storage, S3Storage):
        if storage.endpoint_url:
            options["fs.s3a.endpoint"] = storage.endpoint_url
            options["fs.s3a.path.style.access"] = "true"
        if storage.allow_http:
            options["fs.s3a.connection.ssl.enabled"] = "false"
        if storage.access_key_id and storage.secret_access_key:
            options["fs.s3a.access.key"] = storage.access_key_id
            options["fs.s3a.secret.key"] = storage.secret_access_key
    return "s3a://" + uri.removeprefix("s3://"), options


def read(spark: SparkSession, storage: LocalStorage | S3Storage, uri: str) -> DataFrame:
    """A Delta table's current snapshot, read by the executors."""
    path, options = location(storage, uri)
    return spark.read.format("delta").options(**options).load(path)


def spark_writes(uri: str) -> bool:
    """Whether Spark writes this table: not on S3, where delta-spark's log store is safe for
    one driver only while delta-rs commits with conditional PUTs (``storage.py``); a
    feature table there is still read by Spark and committed by delta-rs."""
    return not uri.startswith("s3://")


def _writable(storage: LocalStorage | S3Storage, uri: str) -> tuple[str, dict[str, str]]:
    if not spark_writes(uri):
        raise ValueError(f"{uri}: Delta tables on S3 are written by delta-rs, not Spark")
    return location(storage, uri)


def pin_table_defaults(spark: SparkSession) -> None:
    """Set ``DELTA_TABLE_DEFAULTS`` on this session (a Connect session is configured by
    its server; the defaults are runtime settings, so the client sets them too)."""
    for key, value in DELTA_TABLE_DEFAULTS.items():
        spark.conf.set(key, value)


def overwrite(
    spark: SparkSession, storage: LocalStorage | S3Storage, uri: str, rows: DataFrame
) -> None:
    """Replace a table's rows (and columns) in one commit; earlier versions stay readable."""
    path, options = _writable(storage, uri)
    pin_table_defaults(spark)
    (
        rows.write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .options(**options)
        .save(path)
    )


def sync_groups(
    spark: SparkSession,
    storage: LocalStorage | S3Storage,
    uri: str,
    rows: DataFrame,
    *,
    keys: Sequence[str],
    column: str,
    groups: Sequence[Any],
) -> WriteMetrics:
    """Make the rows of some groups (say, visits) hold exactly ``rows``, in one MERGE.

    Rows whose values differ are updated, new keys inserted, and the groups' keys absent
    from ``rows`` deleted; other groups are untouched. The counts are taken first (one
    join on the executors), so an unchanged input commits nothing, as with delta-rs.
    ``rows`` must be unique on ``keys``.
    """
    if not groups:
        return WriteMetrics.rows()
    path, options = _writable(storage, uri)
    pin_table_defaults(spark)
    target = spark.read.format("delta").options(**options).load(path)
    scope = F.col(column).isin(list(groups))
    counts = _diff_counts(target.where(scope), rows, keys)
    if not any(counts.values()):
        return WriteMetrics.rows()
    view = f"flowehr_sync_{abs(hash((uri, id(rows))))}"
    rows.createOrReplaceTempView(view)
    try:
        spark.sql(_merge_sql(path, view, rows.columns, keys, column, groups))
    finally:
        spark.catalog.dropTempView(view)
    return WriteMetrics.rows(
        inserted=counts["inserted"], updated=counts["updated"], deleted=counts["deleted"]
    )


def _diff_counts(current: DataFrame, rows: DataFrame, keys: Sequence[str]) -> dict[str, int]:
    """Rows a sync would insert, update and delete: one full outer join on the keys."""
    values = [c for c in rows.columns if c not in keys]
    old = current.select(
        *keys, F.struct(*[F.col(c) for c in values]).alias("_old"), F.lit(True).alias("_in_old")
    )
    new = rows.select(
        *keys, F.struct(*[F.col(c) for c in values]).alias("_new"), F.lit(True).alias("_in_new")
    )
    joined = old.join(new, list(keys), "full_outer")
    in_old, in_new = F.col("_in_old").isNotNull(), F.col("_in_new").isNotNull()
    changed: Column = ~F.col("_old").eqNullSafe(F.col("_new"))
    row = joined.agg(
        F.sum(F.when(in_new & ~in_old, 1).otherwise(0)).alias("inserted"),
        F.sum(F.when(in_old & in_new & changed, 1).otherwise(0)).alias("updated"),
        F.sum(F.when(in_old & ~in_new, 1).otherwise(0)).alias("deleted"),
    ).first()
    names = ("inserted", "updated", "deleted")
    return {name: int((row[name] if row else 0) or 0) for name in names}


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def _merge_sql(
    path: str,
    view: str,
    columns: Sequence[str],
    keys: Sequence[str],
    column: str,
    groups: Sequence[Any],
) -> str:
    on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
    values = [c for c in columns if c not in keys]
    changed = " OR ".join(f"NOT (t.{_quote(c)} <=> s.{_quote(c)})" for c in values) or "FALSE"
    in_groups = f"t.{_quote(column)} IN ({', '.join(_literal(g) for g in groups)})"
    return (
        f"MERGE INTO delta.{_quote(path)} AS t USING {_quote(view)} AS s ON {on} "  # nosec B608: identifiers quoted, group values escaped literals from the pipeline
        f"WHEN MATCHED AND ({changed}) THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT * "
        f"WHEN NOT MATCHED BY SOURCE AND {in_groups} THEN DELETE"
    )
