"""A FHIR-only hospital and a SQL-fed one with the same patients give equal feature tables."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from assets.ehr.quality_checks import (
    import_great_expectations_in_background,
    wait_for_great_expectations_import,
)
from assets.ehr.silver import SILVER_TABLES, build_silver_table_asset
from assets.features.tables import feature_key
from assets.fhir.bronze import run_export
from assets.fhir.clinical import build_clinical_mapping_defs
from assets.keys import bronze_key, silver_key
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.definitions import build_definitions
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.run.runner import RunSummary, run_assets
from resources.delta.store import DeltaTableStore
from resources.pseudonymiser import Pseudonymiser
from resources.spark import SparkResource
from tests.assets.ehr.test_silver_assets import build_silver, load_bronze
from tests.assets.features.feature_story import materialise
from tests.assets.fhir.fhir_world import client, serve, source_settings, write_source
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.fhir_server import BulkServer, bulk_server
from tests.lakes import local_store
from transforms.features.pipeline import FEATURE_TABLES

SILVER = ("patients", "visits", "observations", "lab_results", "diagnoses")
# Where the FHIR feed differs by design: its change number is lastUpdated in microseconds,
# and silver's source_updated_at is the same instant.
FHIR_ONLY = ("change_seq",)


def digest(table: pa.Table, drop: tuple[str, ...] = ()) -> str:
    table = table.drop_columns([c for c in drop if c in table.column_names])
    table = table.select(sorted(table.column_names))
    rows = sorted(repr(sorted(r.items())) for r in table.to_pylist())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def features(delta: DeltaTableStore) -> dict[str, str]:
    return {name: digest(delta.read(feature_key(name).path)) for name in FEATURE_TABLES}


def silver(delta: DeltaTableStore) -> dict[str, str]:
    return {name: digest(delta.read(silver_key(name).path), FHIR_ONLY) for name in SILVER}


def map_fhir(delta: DeltaTableStore) -> dict[str, Any]:
    result = dg.materialize(
        [build_clinical_mapping_defs(source=source_settings())],
        resources={"delta": delta},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {
        e.materialization.asset_key.path[-1]: e.materialization.metadata["rows_deleted"].value
        for e in result.get_asset_materialization_events()
        if e.materialization is not None
    }


@dataclass
class Hospital:
    server: BulkServer
    sql: DeltaTableStore
    fhir: DeltaTableStore
    run: RunSummary


FHIR_ONLY_CONFIG = """
data_source_connections: []
fhir_sources:
  - name: fhir
    base_url: {base_url}/fhir
    feeds_clinical_source: true
"""
# What `flowehr run` materialises for the clinical data: export, mapping, silver, features.
SELECTION = "group:ehr or group:features or group:governance"


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    """The SQL-fed reference built asset by asset; the FHIR-only hospital by ``run_assets``,
    the engine of ``flowehr run``, from its own configuration."""
    root = tmp_path_factory.mktemp("hospital")
    db = write_source(root, patients=14, seed=8)
    sql = local_store(root / "sql")
    config = root / "config"
    config.mkdir()
    for name in ("config.yaml", "config.ci.yaml"):
        shutil.copy(REPO_ROOT / name, config / name)
    # Module-scoped, so the autouse per-test environment is not there yet: set it here.
    with pytest.MonkeyPatch.context() as env, bulk_server() as server:
        env.setenv("FLOWEHR_CONFIG_DIR", str(config))
        env.setenv("FLOWEHR_ENV", "ci")
        env.setenv("FLOWEHR_DATA_DIR", str(root / "data"))
        env.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
        load_bronze(db, sql)
        build_silver(sql)
        materialise(sql)
        serve(server, db)
        (config / "config.local.yaml").write_text(FHIR_ONLY_CONFIG.format(base_url=server.base_url))
        settings = load_settings()
        # run_assets imports Great Expectations on a background thread while the first step
        # runs; a first step that has not imported SQLAlchemy itself (the FHIR export) can
        # then meet a half-imported sqlalchemy.orm. Import it up front.
        import_great_expectations_in_background()
        wait_for_great_expectations_import()
        summary = run_assets(
            build_definitions(settings), dg.DagsterInstance.ephemeral(), selection=SELECTION
        )
        yield Hospital(server, sql, build_delta_store(settings), summary)


def test_a_fhir_only_configuration_runs_with_every_blocking_check_passing(
    hospital: Hospital,
) -> None:
    assert hospital.run.success
    failed = [c for c in hospital.run.checks if not c.passed and c.severity == "ERROR"]
    assert failed == []
    assert {"bronze/fhir/fhir_patient", "bronze/ehr/patients", "gold/features/news2"} <= {
        a.key for a in hospital.run.assets
    }


def test_fhir_fed_silver_equals_sql_fed_silver(hospital: Hospital) -> None:
    assert silver(hospital.fhir) == silver(hospital.sql)
    assert all(hospital.fhir.read(silver_key(t).path).num_rows for t in SILVER)


def test_fhir_fed_feature_tables_equal_sql_fed_ones(hospital: Hospital) -> None:
    assert features(hospital.fhir) == features(hospital.sql)
    assert all(hospital.fhir.read(feature_key(t).path).num_rows for t in FEATURE_TABLES)


def test_a_deleted_fhir_resource_leaves_bronze_and_silver(hospital: Hospital) -> None:
    server, fhir = hospital.server, hospital.fhir
    visit = next(r for (k, _), (r, _) in sorted(server.resources.items()) if k == "Encounter")
    visit_id = int(visit["id"])
    assert visit_id in fhir.read(silver_key("visits").path)["visit_id"].to_pylist()
    server.delete("Encounter", visit["id"])
    landing = run_export(source=source_settings(), client=client(server), delta=fhir)
    assert landing.deleted["Encounter"] == 1 and sum(landing.landed.values()) == 0
    assert map_fhir(fhir)["visits"] == 1
    assert visit_id not in fhir.read(bronze_key("visits").path)["visit_id"].to_pylist()
    assert map_fhir(fhir)["visits"] == 0  # re-mapping is a no-op
    visits = next(t for t in SILVER_TABLES if t.name == "visits")
    result = dg.materialize(  # silver patients are unchanged: rebuild the visits only
        [build_silver_table_asset(table=visits)],
        resources={
            "spark": SparkResource(master="local[1]", conf={"spark.sql.shuffle.partitions": "1"}),
            "delta": fhir,
            "pseudonymiser": Pseudonymiser(key=TEST_KEY),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["rows_deleted"].value == 1
    assert visit_id not in fhir.read(silver_key("visits").path)["visit_id"].to_pylist()
