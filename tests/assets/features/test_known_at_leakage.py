"""Independent leakage check: training-set values against a plain-Python recomputation.

The feature assets build the seeded silver world (late lab results, late charting,
diagnoses coded after discharge); a spine of random (visit, time) rows is joined by
the researcher API; each value is recomputed here from the silver rows with nothing
but the definitions: the latest horizon at or before the event time, and only the
facts known by the event time. A second join on event time alone must differ on
some rows, so the difference is real and visible.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from flowehr_pipelines.researcher.store import FeatureStore
from tests.assets.features.feature_story import Story
from transforms.codelists import load_codelist

FEATURES = [
    "lab_summaries.lab_crp_latest",
    "lab_summaries.lab_crp_hours_since",
    "vital_signs.heart_rate_max_4h",
    "vital_signs.observation_sets_24h",
    "news2.observed_at",
    "codelist:sepsis",
]


def _known(row: dict[str, Any], event: str, known: str) -> datetime:
    return row.get(known) or row[event]


def expected(world: Any, visit_id: int, t: datetime) -> dict[str, Any]:
    """Each feature as known at ``t``, from silver rows alone."""
    labs = [r for r in world.tables["lab_results"] if r["visit_id"] == visit_id]
    obs = [o for o in world.tables["observations"] if o["visit_id"] == visit_id]
    dx = [d for d in world.tables["diagnoses"] if d["visit_id"] == visit_id]
    out: dict[str, Any] = {}
    lab_h = max((r["collected_at"] for r in labs if r["collected_at"] <= t), default=None)
    crp = [
        r
        for r in labs
        if lab_h is not None
        and r["test_code"] == "CRP"
        and r["value"] is not None
        and r["collected_at"] <= lab_h
        and _known(r, "collected_at", "resulted_at") <= t
    ]
    best = max(crp, key=lambda r: (r["collected_at"], r["lab_result_id"]), default=None)
    out["lab_crp_latest"] = None if best is None else best["value"]
    out["lab_crp_hours_since"] = (
        None if best is None else (t - best["collected_at"]).total_seconds() / 3600
    )
    obs_h = max((o["observed_at"] for o in obs if o["observed_at"] <= t), default=None)
    seen = [
        o
        for o in obs
        if obs_h is not None
        and o["observed_at"] <= obs_h
        and _known(o, "observed_at", "charted_at") <= t
    ]
    in_4h = [o for o in seen if obs_h and o["observed_at"] > obs_h - timedelta(hours=4)]
    rates = [o["heart_rate"] for o in in_4h if o["heart_rate"] is not None]
    out["heart_rate_max_4h"] = float(max(rates)) if rates else None
    out["observation_sets_24h"] = (
        None
        if obs_h is None
        else sum(1 for o in seen if o["observed_at"] > obs_h - timedelta(hours=24))
    )
    latest = max(seen, key=lambda o: (o["observed_at"], o["observation_id"]), default=None)
    out["observed_at"] = None if latest is None else latest["observed_at"]
    sepsis = load_codelist("sepsis").codes
    out["codelist_sepsis"] = any(
        d["recorded_at"] <= t and d["icd10_code"].replace(".", "").startswith(sepsis) for d in dx
    )
    return out


def _same(a: Any, b: Any) -> bool:
    if a is None or (isinstance(a, float) and pd.isna(a)) or a is pd.NaT:
        return b is None or (isinstance(b, float) and pd.isna(b)) or b is pd.NaT
    if isinstance(a, float):
        return b is not None and abs(a - float(b)) < 1e-4  # hours: DuckDB's epoch() rounding
    if isinstance(a, pd.Timestamp):
        a = a.to_pydatetime()
    return bool(a == b)


@pytest.fixture(scope="module")
def spine(story: Story) -> pd.DataFrame:
    rng = random.Random(5)
    rows = []
    for visit in story.world.tables["visits"]:
        start = visit["admission_datetime"]
        end = visit["discharge_datetime"] or start + timedelta(days=3)
        for _ in range(12):
            rows.append((visit["visit_id"], start + (end - start) * rng.uniform(-0.05, 1.6)))
    return pd.DataFrame(rows, columns=["visit_id", "event_time"])


def test_no_training_set_value_was_known_after_its_event_time(
    story: Story,
    spine: pd.DataFrame,
) -> None:
    out = FeatureStore(story.delta).training_set(spine, FEATURES)
    checked = 0
    for row in out.to_dict("records"):
        t = row["event_time"].to_pydatetime()
        for table in ("lab_summaries", "vital_signs", "news2"):
            known_at = row[f"{table}__known_at"]
            assert pd.isna(known_at) or known_at <= row["event_time"], (table, row)
        want = expected(story.world, int(row["visit_id"]), t)
        for column, value in want.items():
            assert _same(row[column], value), (column, row["visit_id"], t, row[column], value)
            checked += 1
    assert checked >= 6 * len(spine) > 0


def test_the_event_time_join_sees_late_facts_the_known_at_join_does_not(
    story: Story,
    spine: pd.DataFrame,
) -> None:
    store = FeatureStore(story.delta)
    known = store.training_set(spine, FEATURES)
    retrospective = store.training_set(spine, FEATURES, known_at=False)
    for column in ("lab_crp_latest", "heart_rate_max_4h", "codelist_sepsis"):
        differs = ~(
            (known[column] == retrospective[column])
            | (known[column].isna() & retrospective[column].isna())
        )
        assert differs.sum() > 0, column
