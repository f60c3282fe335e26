"""Changed-visit detection from input fingerprints, and when an update must be full."""

from __future__ import annotations

from pyspark.sql import SparkSession

from tests.transforms.features.silver_rows import collect, frame, obs, visit
from transforms.features.dictionary import FeatureOptions
from transforms.features.incremental import (
    changed_visit_ids,
    person_fingerprints,
    visit_fingerprints,
)
from transforms.features.news2 import NEWS2
from transforms.features.pipeline import compute_feature_update


def changed(spark: SparkSession, before: dict, after: dict) -> set[int]:
    old = visit_fingerprints(
        frame(spark, "visits", before["visits"]), frame(spark, "observations", before["obs"])
    )
    new = visit_fingerprints(
        frame(spark, "visits", after["visits"]), frame(spark, "observations", after["obs"])
    )
    return {r["visit_id"] for r in collect(changed_visit_ids(new, old))}


def world() -> dict:
    return {
        "visits": [visit(v, f"p{v}", 0, 20) for v in (1, 2, 3, 4, 5)],
        "obs": [obs(i, v, i) for i, v in enumerate((1, 1, 2, 3, 3, 4, 5), start=1)],
    }


def test_incremental_detects_updates_inserts_deletes_and_gone_visits(spark: SparkSession) -> None:
    before, after = world(), world()
    after["obs"][0]["change_seq"] = 9001  # updated reading of visit 1
    after["obs"] = [o for o in after["obs"] if o["observation_id"] != 3]  # visit 2 loses one
    after["obs"].append(obs(99, 3, 9, seq=9002))  # visit 3 gains one
    after["visits"] = [v for v in after["visits"] if v["visit_id"] != 4]  # visit 4 is gone
    after["visits"].append(visit(6, "p6", 0, 5, seq=9003))  # a new visit
    assert changed(spark, before, after) == {1, 2, 3, 4, 6}
    assert changed(spark, before, world()) == set()


def test_incremental_delete_plus_insert_in_one_visit_is_still_seen(spark: SparkSession) -> None:
    before, after = world(), world()
    after["obs"] = [o for o in after["obs"] if o["observation_id"] != 6]
    after["obs"].append(obs(100, 4, 6, seq=9500))  # same count, new change_seq
    assert changed(spark, before, after) == {4}


def test_incremental_person_scope_spreads_a_change_to_every_visit_of_the_patient(
    spark: SparkSession,
) -> None:
    visits = [visit(1, "a", 0, 5), visit(2, "a", 100, 110), visit(3, "b", 0, 5)]
    before = person_fingerprints(frame(spark, "visits", visits))
    visits.append(visit(4, "a", 200, 210, seq=777))
    after = person_fingerprints(frame(spark, "visits", visits))
    assert {r["visit_id"] for r in collect(changed_visit_ids(after, before))} == {1, 2, 4}


def test_incremental_update_is_full_without_state_or_after_an_option_change(
    spark: SparkSession,
) -> None:
    inputs = {
        "visits": frame(spark, "visits", world()["visits"]),
        "observations": frame(spark, "observations", world()["obs"]),
    }
    first = compute_feature_update(NEWS2, inputs, None, FeatureOptions())
    assert first.full_rebuild
    state = first.state
    same = compute_feature_update(NEWS2, inputs, state, FeatureOptions())
    assert not same.full_rebuild and same.rows.count() == 0 and same.changed_visits.count() == 0
    scale2 = compute_feature_update(NEWS2, inputs, state, FeatureOptions(spo2_scale=2))
    assert scale2.full_rebuild and scale2.rows.count() == 7
    bumped = compute_feature_update(NEWS2, inputs, state, FeatureOptions(version="v2"))
    assert bumped.full_rebuild
    assert {r["feature_version"] for r in collect(bumped.rows)} == {"v2"}
