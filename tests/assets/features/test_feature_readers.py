"""Feature tables written by delta-spark read the same through every reader: delta-rs,
Polars, the researcher's FeatureStore and Spark itself."""

from __future__ import annotations

import polars as pl
from deltalake import DeltaTable

from assets.features.tables import feature_key
from flowehr_pipelines.researcher.store import FeatureStore
from resources.delta import spark_tables
from resources.spark import build_local_spark_session
from tests.assets.features.feature_story import Story, table_hash
from transforms.features.pipeline import FEATURE_TABLES


def test_spark_written_feature_tables_read_the_same_everywhere(story: Story) -> None:
    delta = story.delta
    researcher = FeatureStore(delta)
    spark = build_local_spark_session("local[1]", "readers", {})
    for name in FEATURE_TABLES:
        path = feature_key(name).path
        uri = delta.uri(path)
        engines = {h.get("engineInfo", "") for h in DeltaTable(uri).history()}
        assert any("Delta-Lake/4.4.0" in e for e in engines), (name, engines)  # delta-spark
        stored = delta.read(path)
        expected = table_hash(stored)
        by_polars = pl.read_delta(uri).to_arrow().select(stored.column_names)
        assert table_hash(by_polars.cast(stored.schema)) == expected, name
        assert table_hash(researcher.read(name)) == expected, name
        by_spark = spark_tables.read(spark, delta.storage, uri).toArrow()
        assert table_hash(by_spark.select(stored.column_names).cast(stored.schema)) == expected
