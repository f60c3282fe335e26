"""The researcher API: catalogue, leakage-free training sets, read-only access, export."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from assets.features.tables import arrow_schema, feature_key
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.researcher.reader import published_path
from flowehr_pipelines.researcher.store import FeatureStore
from resources.delta.store import DeltaTableStore
from transforms.features.pipeline import FEATURE_TABLES

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def feature_rows(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = arrow_schema(FEATURE_TABLES[name])
    full = [{"feature_version": "v1", **{f: None for f in schema.names}, **row} for row in rows]
    for row in full:
        row["feature_version"] = row["feature_version"] or "v1"
        row["known_at"] = row["known_at"] or row["horizon_datetime"]
    return pa.Table.from_pylist(full, schema=schema)


def news2_row(visit_id: int, h: float, total: int, person: str = "p1") -> dict[str, Any]:
    return {
        "visit_id": visit_id,
        "person_key": person,
        "horizon_datetime": hours(h),
        "news2_total": total,
        "observed_at": hours(h),
    }


@pytest.fixture
def delta() -> DeltaTableStore:
    return build_delta_store(load_settings())


@pytest.fixture
def store(delta: DeltaTableStore) -> FeatureStore:
    news2 = [news2_row(1, 1, 1), news2_row(1, 5, 5), news2_row(1, 9, 9), news2_row(3, 2, 2, "p3")]
    delta.overwrite(feature_key("news2").path, feature_rows("news2", news2))
    labs = [
        {"visit_id": 1, "person_key": "p1", "horizon_datetime": hours(3), "lab_crp_latest": 30.0},
        {"visit_id": 1, "person_key": "p1", "horizon_datetime": hours(6), "lab_crp_latest": 60.0},
    ]
    delta.overwrite(feature_key("lab_summaries").path, feature_rows("lab_summaries", labs))
    return FeatureStore(delta)


def test_researcher_training_set_never_uses_a_later_horizon(store: FeatureStore) -> None:
    spine = pd.DataFrame(
        {
            "visit_id": [1, 1, 1, 1, 1, 2, 3],
            "event_time": [hours(h) for h in (0.5, 1, 4.99, 5, 100, 5, 1.999)],
            "label": list("abcdefg"),
        }
    )
    out = store.training_set(spine, ["news2.news2_total", "lab_summaries.lab_crp_latest"])
    assert list(out["label"]) == list("abcdefg")  # spine order and columns kept
    assert pd.isna(out["news2_total"][0])  # before the visit's first horizon
    assert out["news2_total"].tolist()[1:5] == [1, 1, 5, 9]  # at-or-before, never after
    assert pd.isna(out["news2_total"][5])  # a visit with no features
    assert pd.isna(out["news2_total"][6])  # its only horizon is after the event
    assert out["lab_crp_latest"][2] == 30.0
    assert out["lab_crp_latest"][3] == 30.0  # the 6 h lab is still in the future at 5 h
    for _, row in out.dropna(subset=["news2__horizon_datetime"]).iterrows():
        assert row["news2__horizon_datetime"] <= row["event_time"]


def test_researcher_training_set_matches_brute_force_as_of(delta: DeltaTableStore) -> None:
    rng = random.Random(5)
    rows = [
        news2_row(v, h, rng.randint(0, 20))
        for v in range(1, 6)
        for h in sorted(rng.sample(range(0, 200), 12))
    ]
    delta.overwrite(feature_key("news2").path, feature_rows("news2", rows))
    spine = pa.table(
        {
            "visit_id": [rng.randint(1, 6) for _ in range(300)],
            "event_time": pa.array([hours(rng.uniform(-5, 210)) for _ in range(300)]),
        }
    )
    out = FeatureStore(delta).training_set(spine, ["news2.news2_total"], output="arrow")
    for event, result in zip(spine.to_pylist(), out.to_pylist(), strict=True):
        eligible = [
            r
            for r in rows
            if r["visit_id"] == event["visit_id"] and r["horizon_datetime"] <= event["event_time"]
        ]
        best = max(eligible, key=lambda r: r["horizon_datetime"]) if eligible else None
        assert result["news2__horizon_datetime"] == (best and best["horizon_datetime"])
        assert result["news2_total"] == (best and best["news2_total"])


def test_researcher_training_set_reads_csv_spines_and_polars(
    store: FeatureStore, tmp_path: Path
) -> None:
    pytest.importorskip("polars")
    spine = tmp_path / "spine.csv"
    spine.write_text("visit_id,event_time\n1,2026-03-01T05:30:00Z\n1,2026-03-01 09:00:00\n")
    out = store.training_set(spine, ["news2.news2_*"], output="polars")
    assert out["news2_total"].to_list() == [5, 9]  # naive times are UTC
    assert out.columns[:2] == ["visit_id", "event_time"]


def test_researcher_training_set_by_person_key(store: FeatureStore) -> None:
    spine = pd.DataFrame({"person_key": ["p3", "p1"], "event_time": [hours(3), hours(6)]})
    out = store.training_set(spine, ["news2.news2_total"], entity_key="person_key")
    assert out["news2_total"].tolist() == [2, 5]


def test_hours_since_count_to_the_training_rows_event_time_not_the_horizon(
    store: FeatureStore, delta: DeltaTableStore
) -> None:
    # A CRP taken at 08:00, as the 09:00 horizon sees it: one hour before.
    lab = {"visit_id": 7, "person_key": "p7", "horizon_datetime": hours(9),
           "lab_crp_latest": 12.0, "lab_crp_hours_since": 1.0}  # fmt: skip
    delta.overwrite(feature_key("lab_summaries").path, feature_rows("lab_summaries", [lab]))
    spine = pd.DataFrame({"visit_id": [7, 7], "event_time": [hours(9), hours(14)]})
    out = store.training_set(spine, ["lab_summaries.lab_crp_hours_since"])
    assert out["lab_crp_hours_since"].tolist() == [1.0, 6.0]


def test_versions_as_of_a_moment_are_the_newest_committed_by_then(
    store: FeatureStore, delta: DeltaTableStore
) -> None:
    path = feature_key("news2").path
    first = delta.version(path)
    between = datetime.now(UTC)
    time.sleep(0.01)
    delta.overwrite(path, feature_rows("news2", [news2_row(1, 1, 20)]))
    assert store.versions_as_of(["news2"], between) == {"news2": first}
    assert store.versions_as_of(["news2"]) == {"news2": delta.version(path)}
    with pytest.raises(ValueError, match="had no version by 2000-01-01"):
        store.versions_as_of(["news2"], datetime(2000, 1, 1, tzinfo=UTC))


def test_researcher_time_travel_reads_an_earlier_version(
    store: FeatureStore, delta: DeltaTableStore
) -> None:
    path = feature_key("news2").path
    first = delta.version(path)
    assert first is not None
    delta.overwrite(path, feature_rows("news2", [news2_row(1, 1, 20)]))
    spine = pd.DataFrame({"visit_id": [1], "event_time": [hours(2)]})
    assert store.training_set(spine, ["news2.news2_total"])["news2_total"][0] == 20
    old = store.training_set(spine, ["news2.news2_total"], versions={"news2": first})
    assert old["news2_total"][0] == 1


def test_a_version_the_table_lacks_is_one_line_naming_the_versions_it_has(
    store: FeatureStore, delta: DeltaTableStore
) -> None:
    path = feature_key("news2").path
    delta.overwrite(path, feature_rows("news2", [news2_row(1, 1, 20)]))
    latest = delta.version(path)
    spine = pd.DataFrame({"visit_id": [1], "event_time": [hours(2)]})
    with pytest.raises(ValueError) as raised:
        store.training_set(spine, ["news2.news2_total"], versions={"news2": 99})
    assert str(raised.value).startswith(
        f"gold/features/news2 has no readable version 99: its versions are 0 to {latest}"
    )
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "path",
    [
        "landing/transaction_history",
        "bronze/ehr/patients",
        "silver/ehr/patients",
        "internal/etl_state",
        "internal/feature_state/news2",
        "gold/features/../../bronze/ehr/patients",
        "gold/features",
        "/etc/passwd",
    ],
)
def test_researcher_cannot_open_unpublished_zones(store: FeatureStore, path: str) -> None:
    with pytest.raises(PermissionError, match="published"):
        store.open_table(path)


def test_researcher_may_open_published_zones(store: FeatureStore) -> None:
    assert published_path("reporting/request_item_status") == ("reporting", "request_item_status")
    assert store.open_table("gold/features/news2").num_rows == 4
    with pytest.raises(FileNotFoundError):
        store.open_table("gold/features/outcomes")


def test_researcher_catalogue_lists_tables_with_their_dictionary(store: FeatureStore) -> None:
    tables = {t.name: t for t in store.list_tables()}
    assert set(tables) == set(FEATURE_TABLES)
    news2 = tables["news2"]
    assert news2.rows == 4 and news2.delta_version == 0 and news2.feature_versions == ("v1",)
    assert tables["outcomes"].rows is None
    columns = {c.name: c for c in news2.columns}
    assert columns["clinical_risk"].type == "string"
    assert "low-medium" in columns["clinical_risk"].description
    assert columns["visit_id"].role == "key"
    assert all(c.description for c in news2.columns)
    labels = {c.name for c in tables["outcomes"].columns if c.role == "label"}
    assert {"readmitted_30d", "in_hospital_death", "length_of_stay_hours"} <= labels


def test_researcher_rejects_unknown_tables_and_columns(store: FeatureStore) -> None:
    spine = pd.DataFrame({"visit_id": [1], "event_time": [hours(1)]})
    with pytest.raises(KeyError, match="no feature table"):
        store.training_set(spine, ["bronze"])
    with pytest.raises(KeyError, match="matching"):
        store.training_set(spine, ["news2.nhs_number"])
    with pytest.raises(ValueError, match="no column"):
        store.training_set(spine.rename(columns={"event_time": "t"}), ["news2"])


def test_researcher_exports_upserts_into_sqlite(
    store: FeatureStore, delta: DeltaTableStore, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'features.db'}"
    assert store.export_to_sql("news2", url) == 4
    rows = [news2_row(1, 1, 1), news2_row(1, 5, 15), news2_row(1, 9, 9), news2_row(4, 1, 3, "p4")]
    delta.overwrite(feature_key("news2").path, feature_rows("news2", rows))
    assert store.export_to_sql("news2", url) == 4
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT visit_id, horizon_datetime, news2_total FROM features_news2 "
                "ORDER BY visit_id, horizon_datetime"
            )
        ).fetchall()
    assert [(v, t) for v, _, t in stored] == [(1, 1), (1, 15), (1, 9), (3, 2), (4, 3)]
    assert str(stored[1][1]).startswith("2026-03-01 05:00:00")


def test_researcher_reads_without_starting_spark(store: FeatureStore, tmp_path: Path) -> None:
    code = (
        "import sys, pandas as pd\n"
        "from datetime import datetime, UTC\n"
        "from flowehr_pipelines.researcher import FeatureStore\n"
        "from flowehr_pipelines.deployment import build_delta_store\n"
        "from flowehr_pipelines.config import load_settings\n"
        "store = FeatureStore(build_delta_store(load_settings()))\n"
        "when = datetime(2026, 3, 1, 6, tzinfo=UTC)\n"
        "spine = pd.DataFrame({'visit_id': [1], 'event_time': [when]})\n"
        "print(int(store.training_set(spine, ['news2.news2_total'])['news2_total'][0]))\n"
        "import pyspark\n"
        "print(pyspark.SparkContext._active_spark_context is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["5", "True"]


def test_researcher_feature_tables_are_plain_delta_for_polars(
    store: FeatureStore, delta: DeltaTableStore
) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.read_delta(delta.uri(feature_key("news2").path))
    assert frame.height == 4
    assert frame.schema["horizon_datetime"] == pl.Datetime("us", "UTC")


def test_researcher_polars_output_without_polars_says_what_to_install(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)
    spine = pd.DataFrame({"visit_id": [1], "event_time": [hours(2)]})
    with pytest.raises(ImportError, match="polars=="):
        store.training_set(spine, ["news2.news2_total"], output="polars")


def test_training_set_joins_on_known_at_time_unless_told_not_to(delta: DeltaTableStore) -> None:
    # Horizon 5 h as known at 5 h (CRP 30 from before), then at 20 h (the 90 reported).
    labs = [
        {"visit_id": 1, "person_key": "p1", "horizon_datetime": hours(1), "lab_crp_latest": 30.0},
        {
            "visit_id": 1,
            "person_key": "p1",
            "horizon_datetime": hours(5),
            "known_at": hours(5),
            "lab_crp_latest": 30.0,
        },
        {
            "visit_id": 1,
            "person_key": "p1",
            "horizon_datetime": hours(5),
            "known_at": hours(20),
            "lab_crp_latest": 90.0,
        },
    ]
    delta.overwrite(feature_key("lab_summaries").path, feature_rows("lab_summaries", labs))
    store = FeatureStore(delta)
    spine = pd.DataFrame({"visit_id": [1, 1, 1], "event_time": [hours(h) for h in (6, 19, 21)]})
    known = store.training_set(spine, ["lab_summaries.lab_crp_latest"])
    assert known["lab_crp_latest"].tolist() == [30.0, 30.0, 90.0]
    assert (known["lab_summaries__known_at"] <= known["event_time"]).all()
    assert known["lab_summaries__horizon_datetime"].tolist() == [hours(5)] * 3
    retrospective = store.training_set(spine, ["lab_summaries.lab_crp_latest"], known_at=False)
    assert retrospective["lab_crp_latest"].tolist() == [90.0, 90.0, 90.0]
