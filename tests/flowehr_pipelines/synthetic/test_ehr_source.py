"""Tests for the synthetic EHR source database generator."""

from __future__ import annotations

import re
import shutil
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from flowehr_pipelines.synthetic.ehr_schema import (
    ORPHAN_PATIENT_ID_BASE,
    TABLES,
    EhrGenerationStats,
    synthetic_nhs_number,
)
from transforms.identifiers import nhs_number_problem

START = date(2026, 10, 1)
DAYS = 30
PERIOD_START = "2026-10-01T00:00:00Z"
PERIOD_END = "2026-10-31T00:00:00Z"
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

EXPECTED_COLUMNS = {
    "patients": [
        "patient_id",
        "mrn",
        "nhs_number",
        "given_name",
        "family_name",
        "date_of_birth",
        "sex",
        "postcode",
        "ethnicity",
    ],
    "visits": [
        "visit_id",
        "patient_id",
        "admission_datetime",
        "discharge_datetime",
        "admission_type",
        "ward",
        "discharge_disposition",
    ],
    "observations": [
        "observation_id",
        "visit_id",
        "observed_at",
        "charted_at",
        "respiratory_rate",
        "spo2",
        "on_supplemental_oxygen",
        "temperature",
        "systolic_bp",
        "heart_rate",
        "consciousness",
    ],
    "lab_results": [
        "lab_result_id",
        "visit_id",
        "collected_at",
        "resulted_at",
        "test_code",
        "value",
        "unit",
        "reference_low",
        "reference_high",
    ],
    "diagnoses": [
        "diagnosis_id",
        "visit_id",
        "icd10_code",
        "description",
        "recorded_at",
        "clinical_note",
    ],
}


def _write(path: Path, *, patients: int = 600, seed: int = 7, **kwargs: int) -> EhrGenerationStats:
    return write_ehr_source(
        path, patients=patients, days=DAYS, start_date=START, seed=seed, **kwargs
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EhrGenerationStats]:
    path = tmp_path_factory.mktemp("ehr") / "ehr.db"
    return path, _write(path, patients=2_000)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def _all_change_seqs(conn: sqlite3.Connection) -> list[int]:
    union = " UNION ALL ".join(f"SELECT change_seq FROM {table}" for table in TABLES)
    return [row[0] for row in conn.execute(union)]


def _news2(row: sqlite3.Row) -> int:
    """NEWS2 (SpO2 scale 1) for one observation row, treating missing readings as 0."""
    score = 0
    rr, spo2, temp = row["respiratory_rate"], row["spo2"], row["temperature"]
    sbp, hr = row["systolic_bp"], row["heart_rate"]
    if rr is not None:
        score += 3 if rr <= 8 else 1 if rr <= 11 else 0 if rr <= 20 else 2 if rr <= 24 else 3
    if spo2 is not None:
        score += 3 if spo2 <= 91 else 2 if spo2 <= 93 else 1 if spo2 <= 95 else 0
    score += 2 if row["on_supplemental_oxygen"] else 0
    if temp is not None:
        score += (
            3
            if temp <= 35.0
            else 1
            if temp <= 36.0
            else 0
            if temp <= 38.0
            else 1
            if temp <= 39.0
            else 2
        )
    if sbp is not None:
        score += (
            3 if sbp <= 90 else 2 if sbp <= 100 else 1 if sbp <= 110 else 0 if sbp <= 219 else 3
        )
    if hr is not None:
        score += (
            3
            if hr <= 40
            else 1
            if hr <= 50
            else 0
            if hr <= 90
            else 1
            if hr <= 110
            else 2
            if hr <= 130
            else 3
        )
    if row["consciousness"] not in (None, "A"):
        score += 3
    return score


def test_write_ehr_source_is_byte_identical_for_same_seed(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    stats_a = _write(first)
    stats_b = _write(second)
    _write(other, seed=8)
    assert stats_a == stats_b
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert _dump(first) != _dump(other)


def test_write_ehr_source_rows_do_not_depend_on_batch_size(tmp_path: Path) -> None:
    _write(tmp_path / "small.db", patients=200, batch_size=7)
    _write(tmp_path / "big.db", patients=200)
    assert _dump(tmp_path / "small.db") == _dump(tmp_path / "big.db")


def test_write_ehr_source_schema_matches_contract(source: tuple[Path, EhrGenerationStats]) -> None:
    path, _ = source
    with _connect(path) as conn:
        for table, columns in EXPECTED_COLUMNS.items():
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            assert [row["name"] for row in info] == [
                *columns,
                "updated_at",
                "change_seq",
                "is_deleted",
            ]
            by_name = {row["name"]: row for row in info}
            assert by_name["change_seq"]["notnull"] == 1
            assert by_name["is_deleted"]["notnull"] == 1
            assert by_name["is_deleted"]["dflt_value"] == "0"
            assert by_name[columns[0]]["pk"] == 1
            indexed = {
                conn.execute(f"PRAGMA index_info({index['name']})").fetchone()["name"]
                for index in conn.execute(f"PRAGMA index_list({table})")
            }
            assert "change_seq" in indexed
        meta = dict(conn.execute("SELECT key, value FROM source_metadata").fetchall())
    assert {"last_change_seq", "seed", "generated_at"} <= set(meta)
    assert meta["seed"] == "7"
    assert meta["generated_at"] == PERIOD_END


def test_write_ehr_source_stats_match_contents(source: tuple[Path, EhrGenerationStats]) -> None:
    path, stats = source
    with _connect(path) as conn:
        counts = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES
        }
        last = conn.execute("SELECT value FROM source_metadata WHERE key='last_change_seq'")
        assert int(last.fetchone()[0]) == stats.last_change_seq
        deleted = sum(
            conn.execute(f"SELECT COUNT(*) FROM {t} WHERE is_deleted != 0").fetchone()[0]
            for t in TABLES
        )
    assert deleted == 0
    assert counts == {
        "patients": stats.patients,
        "visits": stats.visits,
        "observations": stats.observations,
        "lab_results": stats.lab_results,
        "diagnoses": stats.diagnoses,
    }
    assert stats.patients == 2_000
    assert stats.visits > 500 and stats.observations > stats.visits
    assert stats.lab_results > stats.visits and stats.diagnoses >= stats.visits


def test_write_ehr_source_change_seq_is_one_global_sequence(
    source: tuple[Path, EhrGenerationStats],
) -> None:
    path, stats = source
    with _connect(path) as conn:
        seqs = _all_change_seqs(conn)
        assert sorted(seqs) == list(range(1, stats.last_change_seq + 1))
        # Within each table, change_seq grows with the primary key (insertion order).
        for table, columns in TABLES.items():
            query = f"SELECT change_seq FROM {table} ORDER BY {columns[0]}"
            ordered = [row[0] for row in conn.execute(query)]
            assert ordered == sorted(ordered)


def test_write_ehr_source_nhs_numbers_valid_except_counted(
    source: tuple[Path, EhrGenerationStats],
) -> None:
    path, stats = source
    with _connect(path) as conn:
        numbers = [row[0] for row in conn.execute("SELECT nhs_number FROM patients")]
    invalid = [n for n in numbers if nhs_number_problem(n) is not None]
    assert len(invalid) == stats.invalid_nhs_numbers
    assert 1 <= stats.invalid_nhs_numbers <= 30  # ~0.5% of 2,000
    assert any(len(n) == 9 for n in invalid)
    assert any(" " in n for n in numbers)
    digits = [n.replace(" ", "") for n in numbers if nhs_number_problem(n) is None]
    assert len(set(digits)) == len(digits)


def test_synthetic_nhs_number_is_valid_and_unique() -> None:
    numbers = [synthetic_nhs_number(i, seed=3) for i in range(20_000)]
    assert all(nhs_number_problem(n) is None for n in numbers)
    assert len(set(numbers)) == len(numbers)
    assert all(n.startswith(("90", "91")) for n in numbers)
    assert synthetic_nhs_number(5, seed=3) != synthetic_nhs_number(5, seed=4)


def test_write_ehr_source_values_are_plausible(source: tuple[Path, EhrGenerationStats]) -> None:
    path, _ = source
    with _connect(path) as conn:
        patients = conn.execute("SELECT * FROM patients").fetchall()
        visits = conn.execute("SELECT * FROM visits").fetchall()
        observations = conn.execute("SELECT * FROM observations").fetchall()
        labs = conn.execute("SELECT DISTINCT test_code, unit FROM lab_results").fetchall()
        notes = [r[0] for r in conn.execute("SELECT clinical_note FROM diagnoses")]
        orphans = conn.execute(
            "SELECT patient_id FROM visits"
            " WHERE patient_id NOT IN (SELECT patient_id FROM patients)"
        ).fetchall()
    assert all(re.fullmatch(r"MRN\d{8}", p["mrn"]) for p in patients)
    assert all(re.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}", p["postcode"]) for p in patients)
    assert {p["sex"] for p in patients} <= {"M", "F", "U"}
    births = [p["date_of_birth"] for p in patients]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", b) for b in births)
    plausible = [b for b in births if "1900-01-01" <= b <= "2026-10-01"]
    assert len(births) - len(plausible) <= 10
    median_birth = sorted(plausible)[len(plausible) // 2]
    assert median_birth < "1976-01-01"  # skewed older: median age over 50

    assert {v["admission_type"] for v in visits} == {"emergency", "elective"}
    assert {v["discharge_disposition"] for v in visits} == {"home", "transfer", "died", None}
    for visit in visits:
        assert PERIOD_START <= visit["admission_datetime"] < PERIOD_END
        if visit["discharge_datetime"] is None:
            assert visit["discharge_disposition"] is None
        else:
            assert visit["admission_datetime"] < visit["discharge_datetime"] < PERIOD_END
    assert all(o[0] >= ORPHAN_PATIENT_ID_BASE for o in orphans)

    assert all(PERIOD_START <= o["observed_at"] < PERIOD_END for o in observations)
    assert all(ISO_RE.match(o["updated_at"]) for o in observations[:1000])
    scores = [_news2(o) for o in observations]
    assert min(scores) == 0 and max(scores) >= 10
    assert any(o["heart_rate"] is None for o in observations)
    assert {o["consciousness"] for o in observations} >= {"A", "V"}
    assert {code for code, _ in labs} == {"HB", "WBC", "CRP", "CREAT", "NA", "K", "LACTATE"}
    assert any(re.search(r"\b9[01]\d \d{3} \d{4}\b|\b9[01]\d{8}\b", note) for note in notes)


def test_write_ehr_source_replaces_existing_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "ehr.db"
    path.parent.mkdir()
    path.write_bytes(b"not a database")
    stats = _write(path, patients=50)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ehr.db"]
    with _connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM patients").fetchone()[0] == stats.patients
    stats_again = _write(path, patients=20)
    assert stats_again.patients == 20
    with _connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM patients").fetchone()[0] == 20


def test_apply_source_changes_bumps_change_seq_and_tombstones(
    source: tuple[Path, EhrGenerationStats],
    tmp_path: Path,
) -> None:
    original, before = source
    path = tmp_path / "ehr.db"
    shutil.copy(original, path)
    now = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    changes = apply_source_changes(
        path, seed=11, update_fraction=0.02, delete_fraction=0.005, new_patients=25, now=now
    )
    assert changes.first_change_seq == before.last_change_seq + 1
    assert changes.updated > 0 and changes.deleted > 0 and changes.inserted > 25
    with _connect(path) as conn:
        seqs = _all_change_seqs(conn)
        assert len(seqs) == len(set(seqs))
        assert max(seqs) == changes.last_change_seq
        meta = dict(conn.execute("SELECT key, value FROM source_metadata").fetchall())
        assert int(meta["last_change_seq"]) == changes.last_change_seq
        tombstones = sum(
            conn.execute(f"SELECT COUNT(*) FROM {t} WHERE is_deleted = 1").fetchone()[0]
            for t in TABLES
        )
        assert tombstones == changes.deleted
        touched = [
            row
            for table in TABLES
            for row in conn.execute(
                f"SELECT updated_at FROM {table} WHERE change_seq >= ?",
                (changes.first_change_seq,),
            )
        ]
        new_patients = conn.execute(
            "SELECT COUNT(*) FROM patients WHERE patient_id > ?", (before.patients,)
        ).fetchone()[0]
        total_rows = sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES)
    assert all(row[0] == "2026-11-01T09:30:00Z" for row in touched)
    # Rows updated and then tombstoned keep only their last change_seq.
    assert len(touched) <= changes.updated + changes.deleted + changes.inserted
    assert len(touched) >= changes.deleted + changes.inserted
    assert new_patients == 25
    assert total_rows == before.last_change_seq + changes.inserted


def test_apply_source_changes_is_deterministic(
    source: tuple[Path, EhrGenerationStats],
    tmp_path: Path,
) -> None:
    original, _ = source
    paths = [tmp_path / f"{name}.db" for name in ("a", "b", "c")]
    for path in paths:
        shutil.copy(original, path)
    stats = [
        apply_source_changes(path, seed=seed, new_patients=5)
        for path, seed in zip(paths, (1, 1, 2), strict=True)
    ]
    assert stats[0] == stats[1]
    assert _dump(paths[0]) == _dump(paths[1])
    assert _dump(paths[0]) != _dump(paths[2])
    # The default "now" is one hour after the last recorded write, so calls move time on.
    again = apply_source_changes(paths[0], seed=1)
    with _connect(paths[0]) as conn:
        stamp = conn.execute("SELECT value FROM source_metadata WHERE key='last_changes_at'")
        assert stamp.fetchone()[0] == "2026-10-31T02:00:00Z"
    assert again.first_change_seq == stats[0].last_change_seq + 1


def test_apply_source_changes_with_nothing_to_do_is_an_empty_range(tmp_path: Path) -> None:
    path = tmp_path / "ehr.db"
    stats = _write(path, patients=30)
    changes = apply_source_changes(path, seed=1, update_fraction=0, delete_fraction=0)
    assert (changes.updated, changes.deleted, changes.inserted) == (0, 0, 0)
    assert changes.first_change_seq == stats.last_change_seq + 1
    assert changes.last_change_seq == stats.last_change_seq


def test_demo_source_records_when_facts_became_known(tmp_path: Path) -> None:
    """Late results, late charting and coding after discharge, never before the event."""

    db = tmp_path / "ehr.db"
    write_ehr_source(db, patients=400, days=30, start_date=date(2026, 11, 1), seed=3)
    with sqlite3.connect(db) as conn:
        ((charted, late_charted, charted_early),) = conn.execute(
            "SELECT count(*), sum(charted_at > observed_at), sum(charted_at < observed_at) "
            "FROM observations"
        ).fetchall()
        ((labs, resulted_late, resulted_early),) = conn.execute(
            "SELECT count(*), sum(julianday(resulted_at) - julianday(collected_at) > 0.5), "
            "sum(resulted_at < collected_at) FROM lab_results"
        ).fetchall()
        ((coded, after_discharge),) = conn.execute(
            "SELECT count(*), sum(d.recorded_at > v.discharge_datetime) "
            "FROM diagnoses d JOIN visits v USING (visit_id)"
        ).fetchall()
    assert charted_early == resulted_early == 0
    assert 0.05 < late_charted / charted < 0.2
    assert 0.03 < resulted_late / labs < 0.15
    assert 0.1 < after_discharge / coded < 0.4
