"""The Databricks code path run locally: the feature job as a Pipes subprocess on local Spark.

The feature asset is built exactly as for ``compute: databricks`` (Pipes extras, staged
Parquet output, delta-rs commit), with the Databricks job resource swapped for one that
starts ``transforms.pipes.feature_job`` as a subprocess. Its results must equal what the
in-process asset computes, for a full build and for an incremental one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from assets.features.tables import (
    STAGING_ZONE,
    build_feature_table_defs,
    compute_in_process,
    compute_with_pipes,
    feature_key,
)
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from resources.databricks import LocalPipesResource
from resources.delta.store import DeltaTableStore
from resources.spark import SparkResource
from tests.assets.silver_world import apply_changelog, build_world
from transforms.features.news2 import NEWS2

pytestmark = pytest.mark.timeout(600)


def table_hash(table: pa.Table) -> str:
    rows = sorted(repr(tuple(r.values())) for r in table.to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def run(delta: DeltaTableStore, *, pipes: bool, full_rebuild: bool = False) -> dict[str, Any]:
    settings = load_settings()
    compute = compute_with_pipes if pipes else compute_in_process
    (asset,) = build_feature_table_defs(spec=NEWS2, settings=settings, compute=compute).assets or []
    assert isinstance(asset, dg.AssetsDefinition)
    resources: dict[str, Any] = {"delta": delta}
    if pipes:
        resources["feature_jobs"] = LocalPipesResource(
            spark_conf={"spark.sql.shuffle.partitions": "1"}
        )
    else:
        resources["spark"] = SparkResource(
            master="local[1]", conf={"spark.sql.shuffle.partitions": "1"}
        )
    op = feature_key(NEW2_NAME).to_python_identifier()
    result = dg.materialize(
        [asset],
        resources=resources,
        run_config={"ops": {op: {"config": {"full_rebuild": full_rebuild}}}},
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


NEW2_NAME = NEWS2.name


def test_pipes_feature_job_matches_the_in_process_build(tmp_path: Path) -> None:
    delta = build_delta_store(load_settings())
    world = build_world(seed=3, people=4)
    world.write(delta)
    path = feature_key(NEW2_NAME).path

    first = run(delta, pipes=True)
    assert first["compute"] == "pipes"
    assert first["update_mode"] == "full"
    # NEWS2: each set's horizon as known then, plus one row per later charting of a set
    # taken by that horizon.
    observations = world.tables["observations"]
    revisions = {
        (o["visit_id"], o["observed_at"], later["charted_at"])
        for o in observations
        for later in observations
        if later["visit_id"] == o["visit_id"]
        and later["observed_at"] <= o["observed_at"] < later["charted_at"]
    }
    assert revisions  # the world charts some sets late
    assert first["dagster/row_count"] == len(observations) + len(revisions)
    through_pipes = table_hash(delta.read(path))
    run(delta, pipes=False, full_rebuild=True)
    assert table_hash(delta.read(path)) == through_pipes

    apply_changelog(world)
    world.write(delta)
    second = run(delta, pipes=True)
    assert second["update_mode"] == "incremental"
    assert 0 < second["visits_recomputed"] < len(world.tables["visits"])
    assert second["source_changelog_numbers"]["observations"] == max(
        o["change_seq"] for o in world.tables["observations"]
    )
    incremental = table_hash(delta.read(path))
    run(delta, pipes=False, full_rebuild=True)
    assert table_hash(delta.read(path)) == incremental

    staging = Path(delta.uri((*STAGING_ZONE, NEW2_NAME)))
    assert not staging.exists() or not any(staging.iterdir())
