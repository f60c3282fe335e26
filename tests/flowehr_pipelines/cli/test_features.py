"""``flowehr features``: list, describe, training-set and export on a small published lake."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from assets.features.tables import feature_key
from flowehr_pipelines.cli import main
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from tests.flowehr_pipelines.researcher.test_store import feature_rows, hours, news2_row


@pytest.fixture
def lake() -> None:
    delta = build_delta_store(load_settings())
    rows = [news2_row(1, 1, 1), news2_row(1, 5, 7), news2_row(2, 3, 4, "p2")]
    delta.overwrite(feature_key("news2").path, feature_rows("news2", rows))


def invoke(*args: str):
    return CliRunner().invoke(main, ["features", *args], catch_exceptions=False)


def test_cli_features_list_shows_every_table(lake: None) -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["table", "version", "rows", "features"]
    news2 = next(line for line in lines if line.startswith("news2"))
    assert news2.split()[1:4] == ["0", "3", "v1"]
    assert any(line.startswith("outcomes") and " - " in line for line in lines)


def test_cli_features_describe_prints_the_data_dictionary(lake: None) -> None:
    result = invoke("describe", "news2")
    assert result.exit_code == 0, result.output
    assert "gold/features/news2" in result.output
    assert "3 rows" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("news2_total"))
    assert row.split()[1:3] == ["int", "feature"]


def test_cli_features_describe_unknown_table_exits_2(lake: None) -> None:
    result = invoke("describe", "patients")
    assert result.exit_code == 2
    assert "no feature table 'patients'" in result.output


def test_cli_features_training_set_writes_point_in_time_rows(lake: None, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text(
        "visit_id,event_time,label\n"
        "1,2026-03-01T00:30:00Z,a\n"
        "1,2026-03-01T04:59:59Z,b\n"
        "1,2026-03-01T05:00:00Z,c\n"
        "2,2026-03-02T00:00:00Z,d\n"
    )
    out = tmp_path / "out" / "train.parquet"
    result = invoke(
        "training-set", "--spine", str(spine), "--features", "news2.news2_total", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "4 rows" in result.output and "news2: 3 rows" in result.output
    table = pq.read_table(out).to_pylist()
    assert [r["label"] for r in table] == ["a", "b", "c", "d"]
    assert [r["news2_total"] for r in table] == [None, 1, 7, 4]
    assert table[2]["news2__horizon_datetime"] == hours(5)
    assert table[1]["event_time"] == datetime(2026, 3, 1, 4, 59, 59, tzinfo=UTC)


def test_the_help_example_of_features_names_real_tables_and_columns() -> None:
    from flowehr_pipelines.cli.features import FEATURES_EXAMPLE
    from flowehr_pipelines.researcher.store import FeatureStore

    store = FeatureStore.for_researcher()
    resolved = store.resolve_features(FEATURES_EXAMPLE.split(","))
    assert set(resolved) == {"news2", "lab_summaries"}
    assert "lab_crp_latest" in resolved["lab_summaries"]
    help_text = CliRunner().invoke(main, ["features", "training-set", "--help"]).output
    assert " ".join(FEATURES_EXAMPLE.split()) in " ".join(help_text.split())


def test_cli_features_training_set_reports_a_bad_spine(lake: None, tmp_path: Path) -> None:
    spine = tmp_path / "spine.csv"
    spine.write_text("visit,when\n1,2026-03-01T00:30:00Z\n")
    result = invoke(
        "training-set",
        "--spine",
        str(spine),
        "--features",
        "news2",
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert result.exit_code == 2
    assert "no column(s) visit_id, event_time" in result.output


def test_cli_features_export_upserts_into_sqlite(lake: None, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = invoke("export", "news2", "--url", url, "--table-name", "news2_features")
    assert result.exit_code == 0, result.output
    assert "3 rows upserted into news2_features" in result.output
    again = invoke("export", "news2", "--url", url, "--table-name", "news2_features")
    assert again.exit_code == 0
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM news2_features")).scalar() == 3


def write_spine(tmp_path: Path) -> Path:
    spine = tmp_path / "spine.csv"
    spine.write_text("visit_id,event_time\n1,2026-03-01T04:00:00Z\n1,2026-03-01T06:00:00Z\n")
    return spine


def test_training_set_manifest_rebuilds_the_same_bytes_after_the_table_changes(
    lake: None, tmp_path: Path
) -> None:
    spine, out = write_spine(tmp_path), tmp_path / "train.parquet"
    made = invoke("training-set", "--spine", str(spine), "--features", "news2", "--out", str(out))
    assert made.exit_code == 0, made.output
    manifest = json.loads((tmp_path / "train.parquet.manifest.json").read_text())
    assert manifest["versions"] == {"news2": 0} and manifest["features"] == ["news2"]
    assert manifest["spine_sha256"] == hashlib.sha256(spine.read_bytes()).hexdigest()
    assert manifest["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    original = out.read_bytes()
    # The pipeline writes a new version; the manifest still reads version 0.
    delta = build_delta_store(load_settings())
    delta.overwrite(feature_key("news2").path, feature_rows("news2", [news2_row(1, 1, 19)]))
    out.unlink()
    again = invoke("training-set", "--manifest", str(tmp_path / "train.parquet.manifest.json"))
    assert again.exit_code == 0, again.output
    assert "reproduced byte for byte" in again.output
    assert out.read_bytes() == original


def test_training_set_manifest_refuses_a_changed_spine_or_a_different_result(
    lake: None, tmp_path: Path
) -> None:
    spine, out = write_spine(tmp_path), tmp_path / "train.csv"
    invoke("training-set", "--spine", str(spine), "--features", "news2", "--out", str(out))
    manifest_file = tmp_path / "train.csv.manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({**manifest, "output_sha256": "0" * 64}))
    differs = invoke("training-set", "--manifest", str(manifest_file))
    assert differs.exit_code == 2 and "differs from the manifest's" in differs.output
    spine.write_text(spine.read_text() + "1,2026-03-01T07:00:00Z\n")
    changed = invoke("training-set", "--manifest", str(manifest_file))
    assert changed.exit_code == 2 and "has changed since the manifest" in changed.output
    assert invoke("training-set", "--manifest", str(tmp_path / "nope.json")).exit_code == 2


def test_as_of_date_reads_the_version_of_that_day_or_says_there_was_none(
    lake: None, tmp_path: Path
) -> None:
    spine, out = write_spine(tmp_path), tmp_path / "train.parquet"
    today = datetime.now(UTC).date()
    args = ["training-set", "--spine", str(spine), "--features", "news2", "--out", str(out)]
    ok = invoke(*args, "--as-of-date", today.isoformat())
    assert ok.exit_code == 0 and "news2 v0" in ok.output
    before = invoke(*args, "--as-of-date", (today - timedelta(days=1)).isoformat())
    assert before.exit_code == 2
    assert "gold/features/news2 had no version by" in before.output
    assert len(before.output.strip().splitlines()) == 1


def write_cohort_lake() -> None:
    """Two sepsis visits (one a child) and a pneumonia one, with NEWS2 horizons."""
    delta = build_delta_store(load_settings())
    people = {1: ("p1", 70), 2: ("p2", 15), 3: ("p3", 60)}
    demographics = [
        {"visit_id": v, "person_key": p, "horizon_datetime": hours(0), "age_at_admission": age}
        | {"admission_type": "emergency"}
        for v, (p, age) in people.items()
    ]
    outcomes = [
        {"visit_id": v, "person_key": p, "horizon_datetime": hours(0)}
        | {"discharge_datetime": hours(48), "readmitted_30d": v == 1}
        for v, (p, _) in people.items()
    ]
    codes = [(1, "A41.9", 2), (2, "A40.1", 3), (3, "J18.9", 2)]
    diagnoses = [
        {"visit_id": v, "person_key": people[v][0], "horizon_datetime": hours(0)}
        | {"known_at": hours(h), "icd10_code": code, "code_system": "icd10"}
        for v, code, h in codes
    ]
    for name, rows in (
        ("patient_demographics", demographics),
        ("outcomes", outcomes),
        ("diagnoses", diagnoses),
        ("news2", [news2_row(1, 1, 1), news2_row(1, 40, 7), news2_row(3, 3, 4, "p3")]),
    ):
        delta.overwrite(feature_key(name).path, feature_rows(name, rows))


def test_cohort_spine_then_training_set_reproduces_after_changes_and_housekeeping(
    tmp_path: Path,
) -> None:
    from assets.housekeeping import keep_feature_history

    write_cohort_lake()
    spine = tmp_path / "sepsis.csv"
    made = invoke("cohort", "sepsis_adults", "--out", str(spine))
    assert made.exit_code == 0, made.output
    assert "1-7 visits of 1-7 people (counts under disclosure control: round" in made.output
    assert "sepsis@2026-12" in made.output
    (row,) = pa_csv.read_csv(spine).to_pylist()
    assert (row["visit_id"], row["event_time"]) == (1, hours(48))  # indexed at discharge
    from_file = invoke(
        "training-set",
        "--spine",
        str(spine),
        "--features",
        "news2",
        "--out",
        str(tmp_path / "f.csv"),
    )
    assert from_file.exit_code == 0, from_file.output
    out = tmp_path / "train.parquet"
    args = ["--features", "news2.news2_total,codelist:sepsis", "--out", str(out)]
    built = invoke("training-set", "--cohort", "sepsis_adults", *args)
    assert built.exit_code == 0, built.output
    table = pq.read_table(out).to_pylist()
    assert [(r["visit_id"], r["news2_total"], r["codelist_sepsis"]) for r in table] == [
        (1, 7, True)
    ]
    manifest_file = tmp_path / "train.parquet.manifest.json"
    manifest = json.loads(manifest_file.read_text())
    assert manifest["cohort"]["name"] == "sepsis_adults" and manifest["spine_file"] == ""
    assert [c["name"] for c in manifest["codelists"]] == ["sepsis"]
    assert set(manifest["versions"]) == {"news2", "diagnoses", "patient_demographics", "outcomes"}
    original = out.read_bytes()
    # New sources: visit 3 gets a sepsis code; then housekeeping keeps the history.
    delta = build_delta_store(load_settings())
    extra = {"visit_id": 3, "person_key": "p3", "horizon_datetime": hours(0)}
    extra |= {"known_at": hours(5), "icd10_code": "A41.0", "code_system": "icd10"}
    current = delta.read(feature_key("diagnoses").path).to_pylist()
    delta.overwrite(feature_key("diagnoses").path, feature_rows("diagnoses", [*current, extra]))
    for name in ("news2", "diagnoses", "patient_demographics", "outcomes"):
        keep_feature_history(delta, feature_key(name).path, days=90)
    grown = invoke("cohort", "sepsis_adults", "--out", str(tmp_path / "now.csv"))
    assert grown.exit_code == 0 and "1-7 visits of 1-7 people" in grown.output
    assert pa_csv.read_csv(tmp_path / "now.csv").num_rows == 2
    again = invoke("training-set", "--manifest", str(manifest_file))
    assert again.exit_code == 0 and "reproduced byte for byte" in again.output, again.output
    assert out.read_bytes() == original


def test_cli_lists_code_lists_and_refuses_event_tables_as_horizon_features(
    tmp_path: Path,
) -> None:
    listed = invoke("codelists")
    assert listed.exit_code == 0
    sepsis = next(line for line in listed.output.splitlines() if line.startswith("sepsis "))
    assert sepsis.split()[1:5] == ["icd10", "2026-12", "2026-12", "16"]
    write_cohort_lake()
    spine = write_spine(tmp_path)
    refused = invoke(
        "training-set", "--spine", str(spine), "--features", "diagnoses", "--out", "x.csv"
    )
    assert refused.exit_code == 2 and "codelist:<name>" in refused.output
    bad = invoke("cohort", "nope", "--out", str(tmp_path / "x.csv"))
    assert bad.exit_code == 2 and "no cohort definition nope" in bad.output
