"""The feature assets' story, built once per test package: first build, changelog load,
no-op rerun and full rebuild on real Delta tables (see ``test_features``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from assets.features.tables import KEY_CHECK, NO_IDENTIFIERS_CHECK, build_defs, feature_key
from assets.governance.k_anonymity_check import K_ANONYMITY_CHECK
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from resources.delta.store import DeltaTableStore
from resources.spark import SparkResource
from tests.assets.silver_world import Changes, SilverWorld, apply_changelog, build_world
from transforms.features.pipeline import FEATURE_TABLES


def table_hash(table: pa.Table) -> str:
    rows = sorted(
        repr(tuple(r.values())) for r in table.select(sorted(table.column_names)).to_pylist()
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def contents(delta: DeltaTableStore) -> dict[str, str]:
    return {name: table_hash(delta.read(feature_key(name).path)) for name in FEATURE_TABLES}


def materialise(delta: DeltaTableStore, *, full_rebuild: bool = False) -> dict[str, Any]:
    settings = load_settings()
    assets = [a for a in build_defs(settings).assets or [] if isinstance(a, dg.AssetsDefinition)]
    config = {
        "ops": {
            feature_key(name).to_python_identifier(): {"config": {"full_rebuild": full_rebuild}}
            for name in FEATURE_TABLES
        }
    }
    result = dg.materialize(
        assets,
        resources={
            "delta": delta,
            "spark": SparkResource(master="local[1]", conf={"spark.sql.shuffle.partitions": "1"}),
        },
        run_config=config,
    )
    assert result.success
    checks = [e for e in result.get_asset_check_evaluations()]
    assert {c.check_name for c in checks} == {KEY_CHECK, NO_IDENTIFIERS_CHECK, K_ANONYMITY_CHECK}
    # Six patients cannot share a class of k = 10: demographics withholds all their
    # quasi-identifiers, so the blocking k-anonymity check passes with the others.
    assert all(c.passed for c in checks)
    (k_check,) = [c for c in checks if c.check_name == K_ANONYMITY_CHECK]
    assert k_check.severity == dg.AssetCheckSeverity.ERROR
    assert k_check.metadata["patients_withheld"].value == k_check.metadata["patients"].value
    materializations = [e.materialization for e in result.get_asset_materialization_events()]
    return {
        m.asset_key.path[-1]: {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        for m in materializations
    }


@dataclass
class Story:
    delta: DeltaTableStore
    world: SilverWorld
    changes: Changes
    first: dict[str, Any]
    incremental: dict[str, Any]
    incremental_contents: dict[str, str]
    noop: dict[str, Any]
    full: dict[str, Any]
    full_contents: dict[str, str]


def build_story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    from tests.conftest import REPO_ROOT, TEST_KEY

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWEHR_CONFIG_DIR", str(REPO_ROOT))
        mp.setenv("FLOWEHR_ENV", "ci")
        mp.setenv("FLOWEHR_DATA_DIR", str(tmp_path_factory.mktemp("features")))
        mp.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
        delta = build_delta_store(load_settings())
        world = build_world()
        world.write(delta)
        first = materialise(delta)
        changes = apply_changelog(world)
        world.write(delta)
        incremental = materialise(delta)
        incremental_contents = contents(delta)
        noop = materialise(delta)
        full = materialise(delta, full_rebuild=True)
        return Story(
            delta,
            world,
            changes,
            first,
            incremental,
            incremental_contents,
            noop,
            full,
            contents(delta),
        )
