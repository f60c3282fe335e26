"""Silver assets on a real (small) source: quarantine, keys, idempotency, incremental == full."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from assets.ehr.bronze_loader import load_source_table
from assets.ehr.settings import SourceTable
from assets.ehr.silver import SILVER_TABLES, build_silver_table_asset
from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from flowehr_pipelines.synthetic.ehr_schema import TABLES
from resources.delta.store import DeltaTableStore
from resources.pseudonymiser import Pseudonymiser
from resources.spark import SparkResource
from resources.sql_source import SqlSourceResource
from tests.conftest import TEST_KEY
from tests.lakes import local_store
from transforms.identifiers import hmac_sha256_hex

SILVER = [table.name for table in SILVER_TABLES]
KEYS = {table.name: table.key for table in SILVER_TABLES}
NHS_NUMBER_SHAPE = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
IDENTIFIERS = {"nhs_number", "mrn", "given_name", "family_name", "date_of_birth", "postcode"}


def lake(root: Path) -> DeltaTableStore:
    return local_store(root)


def load_bronze(db: Path, delta: DeltaTableStore) -> None:
    source = SqlSourceResource(url=f"sqlite:///{db}")
    for name, columns in TABLES.items():
        table = SourceTable(name=name, primary_key=[columns[0]])
        load_source_table(source_name="ehr", table=table, source=source, delta=delta)


def build_silver(delta: DeltaTableStore) -> dict[str, dict[str, Any]]:
    """Materialise every silver asset; returns each table's metadata."""
    result = dg.materialize(
        [build_silver_table_asset(table=table) for table in SILVER_TABLES],
        resources={
            "spark": SparkResource(master="local[1]", conf={"spark.sql.shuffle.partitions": "1"}),
            "delta": delta,
            "pseudonymiser": Pseudonymiser(key=TEST_KEY),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {
        event.materialization.asset_key.path[-1]: {
            key: getattr(value, "value", value)
            for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
        if event.materialization is not None
    }


def rows(delta: DeltaTableStore, path: tuple[str, ...]) -> list[tuple[Any, ...]]:
    data = delta.read(path)
    columns = sorted(data.column_names)
    return sorted(tuple(row[c] for c in columns) for row in data.to_pylist())


def plant_bad_rows(db: Path) -> dict[tuple[str, str], str]:
    """Make some source rows invalid; returns (table, key) -> expected quarantine reason."""
    expected: dict[tuple[str, str], str] = {}
    with sqlite3.connect(db) as conn:
        first = lambda sql, *args: conn.execute(sql, args).fetchone()[0]  # noqa: E731
        bad_patient = first(
            "SELECT patient_id FROM patients p WHERE EXISTS "
            "(SELECT 1 FROM visits v JOIN observations o USING (visit_id) "
            "WHERE v.patient_id = p.patient_id) ORDER BY patient_id"
        )
        conn.execute(
            "UPDATE patients SET nhs_number = '1234567890' WHERE patient_id = ?", (bad_patient,)
        )
        expected[("patients", str(bad_patient))] = "invalid NHS number"
        for (visit_id,) in conn.execute(
            "SELECT visit_id FROM visits WHERE patient_id = ?", (bad_patient,)
        ).fetchall():
            expected[("visits", str(visit_id))] = "orphan: no valid patient for this visit"
            children = (
                ("observations", "observation_id", "observation"),
                ("lab_results", "lab_result_id", "lab result"),
                ("diagnoses", "diagnosis_id", "diagnosis"),
            )
            for table, key, what in children:
                for (child,) in conn.execute(
                    f"SELECT {key} FROM {table} WHERE visit_id = ?", (visit_id,)
                ).fetchall():
                    expected[(table, str(child))] = f"orphan: no valid visit for this {what}"

        good = (
            "SELECT {key} FROM {table} WHERE is_deleted = 0 AND visit_id IN "
            "(SELECT visit_id FROM visits WHERE patient_id != ?) ORDER BY {key} LIMIT 4"
        )
        obs = [
            r[0]
            for r in conn.execute(
                good.format(key="observation_id", table="observations"), (bad_patient,)
            )
        ]
        plants = [
            (
                "UPDATE observations SET spo2 = 104 WHERE observation_id = ?",
                obs[0],
                "SpO2 outside 0-100",
            ),
            (
                "UPDATE observations SET heart_rate = -5 WHERE observation_id = ?",
                obs[1],
                "heart rate outside 0-300",
            ),
            (
                "UPDATE observations SET consciousness = 'Z' WHERE observation_id = ?",
                obs[2],
                "consciousness is not one of A, C, V, P, U",
            ),
            (
                "UPDATE observations SET visit_id = 999999 WHERE observation_id = ?",
                obs[3],
                "orphan: no valid visit for this observation",
            ),
        ]
        for sql, key, reason in plants:
            conn.execute(sql, (key,))
            expected[("observations", str(key))] = reason
        labs = [
            r[0]
            for r in conn.execute(
                good.format(key="lab_result_id", table="lab_results"), (bad_patient,)
            )
        ]
        conn.execute("UPDATE lab_results SET value = -1 WHERE lab_result_id = ?", (labs[0],))
        expected[("lab_results", str(labs[0]))] = "lab value is negative"
        conn.execute(
            "UPDATE lab_results SET reference_low = 10, reference_high = 5 WHERE lab_result_id = ?",
            (labs[1],),
        )
        expected[("lab_results", str(labs[1]))] = "reference range low is above high"
        dx = [
            r[0]
            for r in conn.execute(
                good.format(key="diagnosis_id", table="diagnoses"), (bad_patient,)
            )
        ]
        conn.execute("UPDATE diagnoses SET icd10_code = 'XYZ' WHERE diagnosis_id = ?", (dx[0],))
        expected[("diagnoses", str(dx[0]))] = "ICD-10 code is missing or malformed"
        conn.execute(
            "UPDATE diagnoses SET recorded_at = 'yesterday' WHERE diagnosis_id = ?", (dx[1],)
        )
        expected[("diagnoses", str(dx[1]))] = "recording time is missing or not ISO 8601"
    return expected


@dataclass
class Silver:
    db: Path
    incremental: DeltaTableStore
    rebuilt: DeltaTableStore
    planted: dict[tuple[str, str], str]
    first_quarantine: dict[tuple[str, str], str]
    first: dict[str, dict[str, Any]]
    after_changes: dict[str, dict[str, Any]]
    rerun: dict[str, dict[str, Any]]
    versions_before_rerun: dict[str, int | None]
    deleted_observations: set[int]


@pytest.fixture(scope="module")
def silver(tmp_path_factory: pytest.TempPathFactory) -> Silver:
    root = tmp_path_factory.mktemp("silver")
    db = root / "ehr.db"
    # The period ends today so that nothing generated is "in the future" for silver.
    start = date.today() - timedelta(days=4)
    write_ehr_source(db, patients=30, days=5, start_date=start, seed=13)
    planted = plant_bad_rows(db)

    incremental = lake(root / "incremental")
    load_bronze(db, incremental)
    first = build_silver(incremental)
    first_quarantine = {
        (row["source_table"], row["record_key"]): row["reason"]
        for name in SILVER
        for row in incremental.read(("bronze", "ehr", f"quarantine_{name}")).to_pylist()
    }
    changes = apply_source_changes(
        db, seed=17, update_fraction=0.1, delete_fraction=0.05, new_patients=4
    )
    with sqlite3.connect(db) as conn:
        deleted = {
            r[0]
            for r in conn.execute(
                "SELECT observation_id FROM observations WHERE is_deleted = 1 AND change_seq >= ?",
                (changes.first_change_seq,),
            )
        }
    load_bronze(db, incremental)
    after_changes = build_silver(incremental)
    versions = {name: incremental.version(("silver", "ehr", name)) for name in SILVER}
    rerun = build_silver(incremental)

    rebuilt = lake(root / "rebuilt")
    load_bronze(db, rebuilt)
    build_silver(rebuilt)
    return Silver(
        db,
        incremental,
        rebuilt,
        planted,
        first_quarantine,
        first,
        after_changes,
        rerun,
        versions,
        deleted,
    )


def test_silver_after_changelog_load_equals_a_full_rebuild(silver: Silver) -> None:
    for name in SILVER:
        for path in (("silver", "ehr", name), ("bronze", "ehr", f"quarantine_{name}")):
            assert rows(silver.incremental, path) == rows(silver.rebuilt, path), path
    changed = silver.after_changes["observations"]
    assert changed["rows_inserted"] > 0
    assert changed["rows_updated"] > 0
    assert changed["rows_deleted"] > 0


def test_silver_change_data_feed_lists_tombstoned_rows_as_deletes(silver: Silver) -> None:
    dt = silver.incremental.table(("silver", "ehr", "observations"))
    feed = pa.table(dt.load_cdf(starting_version=1).read_all())
    deleted = {row["observation_id"] for row in feed.to_pylist() if row["_change_type"] == "delete"}
    assert silver.deleted_observations
    assert deleted >= silver.deleted_observations - {
        int(key) for (table, key) in silver.planted if table == "observations"
    }


def test_silver_rebuild_with_no_changes_commits_nothing(silver: Silver) -> None:
    for name in SILVER:
        meta = silver.rerun[name]
        assert (meta["rows_inserted"], meta["rows_updated"], meta["rows_deleted"]) == (0, 0, 0)
        assert meta["delta_version"] == silver.versions_before_rerun[name], name


def test_silver_tables_are_keyed_and_hold_no_identifiers(silver: Silver) -> None:
    with sqlite3.connect(silver.db) as conn:
        numbers = {
            (n or "").replace(" ", "") for (n,) in conn.execute("SELECT nhs_number FROM patients")
        }
    for name in SILVER:
        data = silver.incremental.read(("silver", "ehr", name))
        keys = data.column(KEYS[name]).to_pylist()
        assert len(keys) == len(set(keys)) > 0, name
        assert None not in data.column("person_key").to_pylist(), name
        assert not IDENTIFIERS & set(data.column_names), name
        assert "clinical_note" not in data.column_names
        for column in data.column_names:
            if pa.types.is_string(data.schema.field(column).type):
                for value in data.column(column).to_pylist():
                    assert not (value and NHS_NUMBER_SHAPE.search(value)), (name, column)
                    assert value not in numbers


def test_silver_columns_follow_the_contract(silver: Silver) -> None:
    expected = {
        "observations": [
            "observation_id", "visit_id", "person_key", "observed_at", "charted_at",
            "respiratory_rate",
            "spo2", "on_supplemental_oxygen", "temperature", "systolic_bp", "heart_rate",
            "consciousness", "change_seq",
        ],
        "lab_results": [
            "lab_result_id", "visit_id", "person_key", "collected_at", "resulted_at",
            "test_code", "value",
            "unit", "reference_low", "reference_high", "change_seq",
        ],
        "diagnoses": [
            "diagnosis_id", "visit_id", "person_key", "icd10_code", "description",
            "recorded_at", "change_seq",
        ],
    }  # fmt: skip
    for name, columns in expected.items():
        assert silver.incremental.read(("silver", "ehr", name)).column_names == columns
    visits = silver.incremental.read(("silver", "ehr", "visits")).to_pylist()
    for visit in visits:
        if visit["discharge_datetime"] is None:
            assert visit["length_of_stay_hours"] is None
        else:
            stay = visit["discharge_datetime"] - visit["admission_datetime"]
            assert visit["length_of_stay_hours"] == pytest.approx(stay.total_seconds() / 3600)
    schema = silver.incremental.read(("silver", "ehr", "observations")).schema
    assert schema.field("on_supplemental_oxygen").type == pa.bool_()
    assert pa.types.is_timestamp(schema.field("observed_at").type)


def test_silver_quarantines_planted_rows_with_their_reasons(silver: Silver) -> None:
    assert silver.planted
    for key, reason in silver.planted.items():
        assert silver.first_quarantine.get(key) == reason, key
    assert len(silver.first_quarantine) == len(silver.planted)  # nothing else in clean data


def test_silver_metadata_counts_quarantine_reasons_and_lineage(silver: Silver) -> None:
    for name in SILVER:
        meta = silver.after_changes[name]
        quarantine = silver.incremental.read(("bronze", "ehr", f"quarantine_{name}"))
        counts: dict[str, int] = {}
        for reason in quarantine.column("reason").to_pylist():
            counts[reason] = counts.get(reason, 0) + 1
        assert meta["quarantine_reasons"] == counts
        assert meta["quarantined_rows"] == quarantine.num_rows
        assert (
            meta["dagster/row_count"] == silver.incremental.read(("silver", "ehr", name)).num_rows
        )
    lineage = silver.first["patients"]["dagster/column_lineage"].deps_by_column
    assert [(d.asset_key.to_user_string(), d.column_name) for d in lineage["person_key"]] == [
        ("bronze/ehr/patients", "nhs_number")
    ]
    observations = silver.first["observations"]["dagster/column_lineage"].deps_by_column
    assert observations["person_key"][0].asset_key.to_user_string() == "silver/ehr/visits"


def test_silver_person_key_is_the_hmac_of_the_nhs_number(silver: Silver) -> None:
    with sqlite3.connect(silver.db) as conn:
        numbers = dict(conn.execute("SELECT patient_id, nhs_number FROM patients"))
    for row in silver.incremental.read(("silver", "ehr", "patients")).to_pylist()[:20]:
        digits = numbers[row["patient_id"]].replace(" ", "")
        assert row["person_key"] == hmac_sha256_hex(TEST_KEY.encode(), digits)
