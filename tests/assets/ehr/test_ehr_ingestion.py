"""Bronze ingestion: bulk then changelog loads, crash safety, the source lock, metadata."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.ehr import bronze_loader
from assets.ehr.bronze import build_source_defs
from assets.ehr.bronze_loader import LOCK_PURPOSE, load_source_table
from assets.ehr.bronze_view import read_current
from assets.ehr.etl_lock import EtlLockHeldError, EtlLockStore, LockOwner
from assets.ehr.etl_state import EtlStateStore
from assets.ehr.settings import DataSourceConnection, EhrSettings, SourceTable
from flowehr_pipelines.synthetic import write_ehr_source
from flowehr_pipelines.synthetic.ehr_changes import apply_source_changes
from flowehr_pipelines.synthetic.ehr_schema import CDC_COLUMNS, TABLES
from resources import progress
from resources.delta.store import DeltaTableStore
from resources.sql_source import SqlSourceResource
from tests.lakes import local_store

BATCH = 60


def connection(batch_size: int = BATCH) -> DataSourceConnection:
    return DataSourceConnection(
        name="ehr",
        tables=[
            SourceTable(name=name, primary_key=[columns[0]], batch_size=batch_size)
            for name, columns in TABLES.items()
        ],
    )


def lake(root: Path) -> DeltaTableStore:
    return local_store(root)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "source" / "ehr.db"
    write_ehr_source(path, patients=40, days=5, start_date=date(2026, 3, 1), seed=21)
    return path


def source(db: Path) -> SqlSourceResource:
    return SqlSourceResource(url=f"sqlite:///{db}")


def load_all(db: Path, delta: DeltaTableStore, conn: DataSourceConnection | None = None) -> dict:
    conn = conn or connection()
    return {
        table.name: load_source_table(
            source_name="ehr", table=table, source=source(db), delta=delta
        )
        for table in conn.tables
    }


def source_rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    columns = TABLES[table] + CDC_COLUMNS
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return sorted(rows)


def bronze_rows(delta: DeltaTableStore, table: str) -> list[tuple[Any, ...]]:
    columns = list(TABLES[table] + CDC_COLUMNS)
    data = read_current(
        delta, ("bronze", "ehr", table), [TABLES[table][0]], columns=columns
    ).to_pylist()
    return sorted(tuple(row[c] for c in columns) for row in data)


def changed_rows(db: Path, first_change_seq: int) -> tuple[int, int]:
    """Source rows changed since ``first_change_seq``, and how many of them are tombstones."""
    changed = tombstoned = 0
    with sqlite3.connect(db) as conn:
        for table in TABLES:
            rows, deleted = conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(is_deleted), 0) FROM {table} WHERE change_seq >= ?",
                (first_change_seq,),
            ).fetchone()
            changed += rows
            tombstoned += deleted
    return changed, tombstoned


def assert_bronze_equals_source(db: Path, delta: DeltaTableStore) -> None:
    for table in TABLES:
        bronze = bronze_rows(delta, table)
        keys = [row[0] for row in bronze]
        assert len(keys) == len(set(keys)), f"{table}: duplicate primary keys"
        assert bronze == source_rows(db, table), table


def test_bulk_load_copies_every_source_row_in_keyset_batches(db: Path, tmp_path: Path) -> None:
    delta = lake(tmp_path / "lake")
    results = load_all(db, delta)
    assert_bronze_equals_source(db, delta)
    observations = results["observations"]
    assert observations.mode == "bulk"
    assert observations.batches == -(-observations.rows_read // BATCH) > 1
    assert observations.changelog_after == observations.source_changelog_number
    assert observations.lag == 0
    again = load_all(db, delta)
    assert all(r.mode == "changelog" and r.rows_read == 0 for r in again.values())
    assert_bronze_equals_source(db, delta)


def test_changelog_load_after_source_changes_equals_a_full_rebuild(
    db: Path, tmp_path: Path
) -> None:
    incremental = lake(tmp_path / "incremental")
    load_all(db, incremental)
    changes = apply_source_changes(
        db, seed=8, update_fraction=0.1, delete_fraction=0.03, new_patients=6
    )
    results = load_all(db, incremental)
    assert all(r.mode == "changelog" for r in results.values())
    changed, tombstoned = changed_rows(db, changes.first_change_seq)
    read = sum(r.rows_read for r in results.values())
    assert read == changed
    assert sum(r.rows_tombstoned for r in results.values()) == tombstoned > 0
    assert sum(r.rows_inserted for r in results.values()) == changes.inserted > 0
    assert sum(r.rows_updated for r in results.values()) == read - changes.inserted

    rebuilt = lake(tmp_path / "rebuilt")
    load_all(db, rebuilt)
    for table in TABLES:
        assert bronze_rows(incremental, table) == bronze_rows(rebuilt, table), table
    assert_bronze_equals_source(db, incremental)


class Boom(RuntimeError):
    pass


def fail_on_call(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, call: int
) -> Callable[[], None]:
    """Make ``owner.name`` (a method or a module's function) raise on its ``call``-th
    call; returns a function that heals it."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            raise Boom(f"{name} failed on call {call}")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)
    return lambda: monkeypatch.setattr(owner, name, real)


@pytest.mark.parametrize(
    ("phase", "owner", "method", "call"),
    [
        # bronze append committed, changelog number not yet advanced
        ("bulk", EtlStateStore, "set", 3),
        # dies before the bronze write of the fourth batch
        ("bulk", bronze_loader, "_append", 4),
        # bronze append committed, changelog number not yet advanced
        ("changelog", EtlStateStore, "set", 2),
        # dies before the second changelog batch's append
        ("changelog", bronze_loader, "_append", 2),
    ],
)
def test_restart_after_failure_mid_batch_neither_loses_nor_duplicates(
    db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    phase: str,
    owner: Any,
    method: str,
    call: int,
) -> None:
    delta = lake(tmp_path / "lake")
    conn = connection(batch_size=25)
    observations = next(t for t in conn.tables if t.name == "observations")
    if phase == "changelog":
        load_all(db, delta, conn)
        apply_source_changes(db, seed=2, update_fraction=0.3, delete_fraction=0.05)
    heal = fail_on_call(monkeypatch, owner, method, call)
    with pytest.raises(Boom):
        load_source_table(source_name="ehr", table=observations, source=source(db), delta=delta)
    heal()
    restarted = load_source_table(
        source_name="ehr", table=observations, source=source(db), delta=delta
    )
    assert restarted.mode == "changelog"
    assert restarted.lag == 0
    load_all(db, delta, conn)
    assert_bronze_equals_source(db, delta)


def test_bulk_load_leaves_rows_changed_mid_load_to_the_next_load(db: Path, tmp_path: Path) -> None:
    delta = lake(tmp_path / "lake")
    observations = next(t for t in connection(batch_size=50).tables if t.name == "observations")
    changed: list[int] = []

    def change_source_after_first_batch() -> None:
        if not changed:
            stats = apply_source_changes(db, seed=6, update_fraction=0.5, delete_fraction=0.1)
            changed.append(stats.last_change_seq)

    first = load_source_table(
        source_name="ehr",
        table=observations,
        source=source(db),
        delta=delta,
        heartbeat=change_source_after_first_batch,
    )
    assert first.mode == "bulk"
    assert first.lag > 0  # the changes made during the load are still to come
    keys = [row[0] for row in bronze_rows(delta, "observations")]
    assert len(keys) == len(set(keys))
    second = load_source_table(
        source_name="ehr", table=observations, source=source(db), delta=delta
    )
    assert (second.changelog_after or 0) > (first.changelog_after or 0)
    assert second.lag == 0
    assert bronze_rows(delta, "observations") == source_rows(db, "observations")


def test_empty_source_table_gets_an_empty_typed_bronze_table(db: Path, tmp_path: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM diagnoses")
    delta = lake(tmp_path / "lake")
    result = load_all(db, delta)["diagnoses"]
    assert result.rows_read == 0 and result.changelog_after is None
    data = delta.read(("bronze", "ehr", "diagnoses"))
    assert data.num_rows == 0
    assert "clinical_note" in data.column_names


# -- the multi-asset: metadata and the source lock -------------------------------------


def materialize(
    db: Path, delta: DeltaTableStore, instance: dg.DagsterInstance | None = None, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    asset = build_source_defs(connection=connection(), ehr=EhrSettings())
    return dg.materialize(
        [asset],
        resources={"ehr": source(db), "delta": delta},
        instance=instance or dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def metadata_by_table(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        event.materialization.asset_key.path[-1]: {
            key: getattr(value, "value", value)
            for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
        if event.materialization is not None
    }


def test_bronze_asset_metadata_counts_rows_changelog_numbers_and_schema(
    db: Path, tmp_path: Path
) -> None:
    delta = lake(tmp_path / "lake")
    first = metadata_by_table(materialize(db, delta))
    assert set(first) == set(TABLES)
    patients = first["patients"]
    assert patients["load_mode"] == "bulk"
    assert patients["rows_inserted"] == patients["dagster/row_count"] == 40
    assert patients["changelog_number_before"] is None
    assert patients["changelog_lag"] == 0
    assert {c.name for c in patients["dagster/column_schema"].columns} >= {
        "nhs_number",
        "change_seq",
    }

    changes = apply_source_changes(db, seed=5, update_fraction=0.2, delete_fraction=0.05)
    second = metadata_by_table(materialize(db, delta))
    changed, tombstoned = changed_rows(db, changes.first_change_seq)
    assert sum(m["rows_read"] for m in second.values()) == changed
    assert sum(m["rows_deleted"] for m in second.values()) == tombstoned > 0
    assert second["patients"]["changelog_number_before"] == patients["changelog_number"]
    assert all(m["changelog_number"] == m["source_changelog_number"] for m in second.values())
    assert EtlLockStore(delta, stale_after=timedelta(hours=2)).holder("ehr") is None


def test_bronze_asset_subset_loads_only_the_selected_tables(db: Path, tmp_path: Path) -> None:
    delta = lake(tmp_path / "lake")
    result = materialize(db, delta, selection="bronze/ehr/visits")
    assert set(metadata_by_table(result)) == {"visits"}
    assert not delta.exists(("bronze", "ehr", "patients"))


def test_bronze_load_logs_tables_and_batches_done_with_rows(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "DEFAULT_INTERVAL_SECONDS", 0.0)  # a line per batch
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(db, lake(tmp_path / "lake"), instance)
    messages = [e.user_message for e in instance.all_logs(result.run_id) if not e.is_dagster_event]
    lines = [m for m in messages if m.startswith("progress bronze/ehr: ")]
    assert any(f"loading patients, 0 of {len(TABLES)} tables done" in line for line in lines)
    assert any(f"{len(TABLES)} of {len(TABLES)} tables done (100%)" in line for line in lines)
    assert all(" rows/s" in line for line in lines if " batches" in line)


def test_second_load_of_a_source_refuses_while_the_lock_is_held(db: Path, tmp_path: Path) -> None:
    delta = lake(tmp_path / "lake")
    locks = EtlLockStore(delta, stale_after=timedelta(hours=2))
    locks.acquire("ehr", LockOwner(run_id="run-first", host="etl-7", pid=555, purpose=LOCK_PURPOSE))
    with pytest.raises(EtlLockHeldError) as error:
        materialize(db, delta)
    assert "locked by bronze load run run-first on host etl-7 (pid 555)" in str(error.value)
    assert not delta.exists(("bronze", "ehr", "patients"))
    holder = locks.holder("ehr")
    assert holder is not None and holder.run_id == "run-first"


def test_stale_lock_is_broken_by_the_next_load_with_a_warning(db: Path, tmp_path: Path) -> None:
    delta = lake(tmp_path / "lake")
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    EtlLockStore(delta, stale_after=timedelta(hours=2), clock=lambda: long_ago).acquire(
        "ehr", LockOwner(run_id="run-dead", host="gone", pid=1, purpose=LOCK_PURPOSE)
    )
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(db, delta, instance)
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(
        "breaking stale lock on source 'ehr': bronze load run run-dead on host gone" in message
        for message in messages
    )
    assert EtlLockStore(delta, stale_after=timedelta(hours=2)).holder("ehr") is None
    assert_bronze_equals_source(db, delta)


# -- merge-on-read bronze: appends, replays, compaction ---------------------------------


def test_replayed_changelog_adds_no_bronze_rows(db: Path, tmp_path: Path) -> None:
    """A re-pull after ``clear-state`` (or a batch repeated after a crash) appends nothing."""
    delta = lake(tmp_path / "lake")
    load_all(db, delta)
    apply_source_changes(db, seed=4, update_fraction=0.1, delete_fraction=0.02)
    load_all(db, delta)
    versions = {t: delta.version(("bronze", "ehr", t)) for t in TABLES}
    EtlStateStore(delta).clear("ehr")
    replay = load_all(db, delta)
    assert all(r.mode == "changelog" and r.rows_read > 0 for r in replay.values())
    assert all(r.rows_inserted == 0 and r.rows_updated == 0 for r in replay.values())
    assert {t: delta.version(("bronze", "ehr", t)) for t in TABLES} == versions
    assert_bronze_equals_source(db, delta)


def test_changelog_load_appends_only_the_changed_rows_and_rewrites_no_file(
    db: Path, tmp_path: Path
) -> None:
    """The cost of a changelog load follows the changes, not the table: no file rewritten."""
    delta = lake(tmp_path / "lake")
    load_all(db, delta)
    path = ("bronze", "ehr", "observations")
    files_before = set(delta.table(path).file_uris())
    rows_before = delta.table(path).count()
    changes = apply_source_changes(db, seed=9, update_fraction=0.05, delete_fraction=0.0)
    result = load_all(db, delta)["observations"]
    assert result.rows_read > 0
    assert files_before <= set(delta.table(path).file_uris())
    assert delta.table(path).count() == rows_before + result.rows_read
    assert result.rows_updated + result.rows_inserted == result.rows_read
    assert changes.first_change_seq > 0


def test_changelog_load_counts_updates_and_inserts_of_the_appended_rows(
    db: Path, tmp_path: Path
) -> None:
    delta = lake(tmp_path / "lake")
    load_all(db, delta)
    changes = apply_source_changes(
        db, seed=12, update_fraction=0.1, delete_fraction=0.0, new_patients=3
    )
    results = load_all(db, delta)
    assert sum(r.rows_inserted for r in results.values()) == changes.inserted > 0
    assert sum(r.rows_updated for r in results.values()) > 0


def test_load_compacts_bronze_once_superseded_rows_pass_the_threshold(
    db: Path, tmp_path: Path
) -> None:
    """Heavy churn is folded back to one row per key, keeping every current row."""
    delta = lake(tmp_path / "lake")
    load_all(db, delta)
    for seed in (31, 32, 33):
        apply_source_changes(db, seed=seed, update_fraction=0.3, delete_fraction=0.02)
        load_all(db, delta)
    for table, columns in TABLES.items():
        raw = delta.read(("bronze", "ehr", table))
        current = read_current(delta, ("bronze", "ehr", table), [columns[0]])
        assert raw.num_rows - current.num_rows < 0.25 * raw.num_rows, table
    assert_bronze_equals_source(db, delta)


def test_changelog_load_takes_a_column_added_to_the_source(db: Path, tmp_path: Path) -> None:
    """A changelog load types rows by bronze's columns, so a new source column must not be
    dropped: it is typed from the source's definition and added to bronze."""
    delta = lake(tmp_path / "lake")
    load_all(db, delta)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE patients ADD COLUMN preferred_name TEXT")
        head = conn.execute("SELECT MAX(change_seq) FROM patients").fetchone()[0]
        conn.execute(
            "UPDATE patients SET preferred_name = 'Sam', change_seq = ? "
            "WHERE patient_id = (SELECT MIN(patient_id) FROM patients)",
            (head + 1000,),
        )
    result = load_all(db, delta)["patients"]
    assert result.rows_read == 1 and result.rows_updated == 1
    current = read_current(delta, ("bronze", "ehr", "patients"), ["patient_id"])
    assert [v for v in current["preferred_name"].to_pylist() if v is not None] == ["Sam"]
    assert current.num_rows == len(source_rows(db, "patients"))
