"""The National Data Opt-out: the list as pseudonyms, and its patients gone from every
research table on the next run (and back if they opt in again), equal to a rebuild."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from assets.features.tables import build_defs as feature_defs
from assets.features.tables import feature_key
from assets.governance.opt_out import OPT_OUT_KEY, OPT_OUT_QUARANTINE, refresh_opt_outs
from assets.governance.opt_out import build_defs as opt_out_defs
from assets.governance.settings import GovernanceSettings, OptOutSettings
from flowehr_pipelines.config import load_settings
from resources.delta.store import DeltaTableStore
from resources.pseudonymiser import Pseudonymiser
from resources.spark import SparkResource
from tests.assets.features.feature_story import table_hash
from tests.assets.silver_world import build_world
from tests.conftest import TEST_KEY
from transforms.features.pipeline import FEATURE_TABLES
from transforms.identifiers import hmac_sha256_hex
from transforms.opt_out import file_entries

PSEUDONYMISER = Pseudonymiser(key=TEST_KEY)
TABLES = {name: FEATURE_TABLES[name] for name in ("patient_demographics", "outcomes")}


def pseudonym(digits: str) -> str:
    return hmac_sha256_hex(TEST_KEY.encode(), digits)


def test_the_list_is_kept_as_pseudonyms_and_bad_lines_as_reasons(store: DeltaTableStore) -> None:
    text = "nhs_number\n943 476 5919\n9434765919\n\n123\n401-023-2137\n1111111111\n"
    counts = refresh_opt_outs(store, PSEUDONYMISER, file_entries(text))
    assert counts["patients"] == 2 and counts["entries_rejected"] == 2
    stored = store.read(OPT_OUT_KEY.path)
    assert stored.column_names == ["person_key"]
    assert set(stored["person_key"].to_pylist()) == {
        pseudonym("9434765919"),
        pseudonym("4010232137"),
    }
    rejected = store.read(OPT_OUT_QUARANTINE).to_pylist()
    assert [r["line_number"] for r in rejected] == [5, 7]
    assert all(r["reason"].startswith("not a valid NHS number: ") for r in rejected)
    assert "123" not in str(rejected)

    version = store.version(OPT_OUT_KEY.path)
    assert not refresh_opt_outs(store, PSEUDONYMISER, file_entries(text))["committed"]
    assert store.version(OPT_OUT_KEY.path) == version


def opt_out_asset(file: Path, data_dir: Path) -> dg.AssetsDefinition:
    settings = SimpleNamespace(
        governance=GovernanceSettings(opt_out=OptOutSettings(file=str(file))), data_dir=data_dir
    )
    (asset,) = opt_out_defs(settings).assets or []
    assert isinstance(asset, dg.AssetsDefinition)
    return asset


def test_the_asset_reports_a_missing_file_in_one_line(tmp_path: Path, store: DeltaTableStore):
    asset = opt_out_asset(Path("missing.txt"), tmp_path)
    result = dg.materialize(
        [asset], resources={"delta": store, "pseudonymiser": PSEUDONYMISER}, raise_on_error=False
    )
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description == (
        f"cannot read the opt-out file {tmp_path / 'missing.txt'}: No such file or directory"
    )


def test_the_asset_shows_only_a_protected_count(tmp_path: Path, store: DeltaTableStore) -> None:
    (tmp_path / "opt_out.txt").write_text("9434765919\n4010232137\n")
    result = dg.materialize(
        [opt_out_asset(Path("opt_out.txt"), tmp_path)],
        resources={"delta": store, "pseudonymiser": PSEUDONYMISER},
    )
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["opted_out_patients"].value == "1-7"
    assert TEST_KEY not in str(metadata) and "9434765919" not in str(metadata)


def build_features(delta: DeltaTableStore, *, full_rebuild: bool = False) -> None:
    assets = [
        a
        for a in feature_defs(load_settings(), tables=TABLES).assets or []
        if isinstance(a, dg.AssetsDefinition)
    ]
    config = {
        "ops": {
            feature_key(name).to_python_identifier(): {"config": {"full_rebuild": full_rebuild}}
            for name in TABLES
        }
    }
    spark = SparkResource(master="local[1]", conf={"spark.sql.shuffle.partitions": "1"})
    assert dg.materialize(assets, resources={"delta": delta, "spark": spark}, run_config=config)


def people(delta: DeltaTableStore) -> dict[str, set[Any]]:
    return {
        name: set(
            delta.read(feature_key(name).path, columns=["person_key"])["person_key"].to_pylist()
        )
        for name in TABLES
    }


def opt_out(delta: DeltaTableStore, *keys: str) -> None:
    delta.overwrite(OPT_OUT_KEY.path, pa.table({"person_key": pa.array(sorted(keys), pa.string())}))


@pytest.mark.integration
def test_opted_out_patients_leave_every_research_table_and_stay_out_of_a_rebuild(
    store: DeltaTableStore,
) -> None:
    world = build_world()
    world.write(store)
    opt_out(store, "person-2")
    build_features(store)
    assert all("person-2" not in found and "person-1" in found for found in people(store).values())

    opt_out(store, "person-2", "person-3")  # a later opt-out: removed on the next run
    build_features(store)
    incremental = {name: table_hash(store.read(feature_key(name).path)) for name in TABLES}
    assert all({"person-2", "person-3"}.isdisjoint(found) for found in people(store).values())
    build_features(store, full_rebuild=True)
    assert incremental == {name: table_hash(store.read(feature_key(name).path)) for name in TABLES}

    opt_out(store, "person-3")  # person 2 opts back in: recomputed like a new patient
    build_features(store)
    assert all("person-2" in found and "person-3" not in found for found in people(store).values())
