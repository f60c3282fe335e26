"""Feature assets on real Delta tables: build, changelog load, and full rebuild agree.

One sequence, built once for the package (``conftest.story``): write a silver world,
materialise every feature table (first run = full build), apply a changelog load to
silver, materialise again (incremental), keep the contents, force a full rebuild and
compare.
"""

from __future__ import annotations

from assets.features.tables import (
    feature_key,
    state_path,
)
from tests.assets.features.feature_story import Story, table_hash
from tests.assets.silver_world import build_world
from transforms.features.pipeline import FEATURE_TABLES


def test_features_first_build_is_full_and_covers_every_visit(story: Story) -> None:
    visits = {v["visit_id"] for v in build_world().tables["visits"]}
    for name, meta in story.first.items():
        assert meta["update_mode"] == "full", name
        assert meta["visits_recomputed"] == len(visits), name
        assert meta["rows_inserted"] == meta["dagster/row_count"] > 0, name
    assert set(story.first) == set(FEATURE_TABLES)


def test_features_incremental_load_equals_a_full_rebuild(story: Story) -> None:
    assert story.incremental_contents == story.full_contents
    # A table generalised over the whole population is rebuilt whole on any change.
    population = {n for n, spec in FEATURE_TABLES.items() if spec.scope == "population"}
    assert population == {"patient_demographics"}
    assert all(
        m["update_mode"] == ("full" if name in population else "incremental")
        for name, m in story.incremental.items()
    )
    assert all(m["update_mode"] == "full" for m in story.full.values())


def test_features_incremental_load_recomputes_only_touched_visits(story: Story) -> None:
    c = story.changes
    patient_visits = {
        v["visit_id"] for v in story.world.tables["visits"] if v["person_key"] == c.patient_changed
    }
    readmitted_visits = {
        v["visit_id"]
        for v in story.world.tables["visits"]
        if v["person_key"] == c.readmitted_person
    }
    deleted_person_visits = {
        v["visit_id"]
        for v in build_world().tables["visits"]
        if v["visit_id"] == c.visit_deleted
        or v["person_key"]
        == next(
            w["person_key"]
            for w in build_world().tables["visits"]
            if w["visit_id"] == c.visit_deleted
        )
    }
    expected = {
        "vital_signs": {c.observation_updated, c.observation_deleted, c.visit_deleted, c.new_visit},
        "news2": {c.observation_updated, c.observation_deleted, c.visit_deleted, c.new_visit},
        "lab_summaries": {c.lab_added, c.visit_deleted, c.new_visit},
        "outcomes": readmitted_visits | deleted_person_visits,
    }
    for name, visits in expected.items():
        assert story.incremental[name]["visits_recomputed"] == len(visits), name
    # Generalised over every patient: each current visit is recomputed, the
    # changed patient's included.
    current = {v["visit_id"] for v in story.world.tables["visits"]}
    assert patient_visits <= current
    assert story.incremental["patient_demographics"]["visits_recomputed"] == len(current)


def test_features_incremental_load_counts_inserts_updates_and_deletes(story: Story) -> None:
    vitals = story.incremental["vital_signs"]
    # The deleted visit's rows and the deleted observation's horizon go; the new
    # visit's observation arrives; the updated reading changes rows of its visit.
    assert vitals["rows_deleted"] >= 2
    assert vitals["rows_inserted"] >= 1
    assert vitals["rows_updated"] >= 1
    outcomes = story.incremental["outcomes"]
    assert outcomes["rows_inserted"] == 1 and outcomes["rows_deleted"] == 1
    assert outcomes["rows_updated"] >= 1  # the earlier visit is now a readmission


def test_features_rerun_without_changes_commits_nothing(story: Story) -> None:
    for name, meta in story.noop.items():
        assert meta["visits_recomputed"] == 0, name
        assert meta["rows_inserted"] == meta["rows_updated"] == meta["rows_deleted"] == 0, name
        assert meta["delta_version"] == story.incremental[name]["delta_version"], name


def test_features_time_travel_reads_the_incremental_version(story: Story) -> None:
    for name in FEATURE_TABLES:
        version = story.incremental[name]["delta_version"]
        earlier = story.delta.read(feature_key(name).path, version=version)
        assert table_hash(earlier) == story.incremental_contents[name]
        assert story.delta.version(feature_key(name).path) == version + 1  # the full rebuild


def test_features_rows_carry_version_and_no_identifiers(story: Story) -> None:
    for name, spec in FEATURE_TABLES.items():
        data = story.delta.read(feature_key(name).path)
        assert data.column_names == spec.column_names
        assert set(data.column("feature_version").to_pylist()) == {"v1"}
        assert "patient_id" not in data.column_names
        keys = {tuple(r.values()) for r in data.select(list(spec.keys)).to_pylist()}
        assert len(keys) == data.num_rows, name


def test_features_metadata_has_lineage_schema_and_changelog_numbers(story: Story) -> None:
    meta = story.incremental["news2"]
    lineage = meta["dagster/column_lineage"]
    deps = lineage.deps_by_column["pulse_score"]
    assert [(d.asset_key.to_user_string(), d.column_name) for d in deps] == [
        ("silver/ehr/observations", "heart_rate")
    ]
    schema = meta["dagster/column_schema"]
    assert [c.name for c in schema.columns] == FEATURE_TABLES["news2"].column_names
    numbers = meta["source_changelog_numbers"]
    highest = {
        name: max(r["change_seq"] for r in story.world.tables[name])
        for name in ("visits", "observations")
    }
    assert numbers == highest
    assert meta["source_changelog_number"] == max(highest.values())


def test_features_state_holds_one_fingerprint_per_visit(story: Story) -> None:
    visits = {v["visit_id"] for v in story.world.tables["visits"]}
    for name in FEATURE_TABLES:
        state = story.delta.read(state_path(name))
        assert set(state.column("visit_id").to_pylist()) == visits
