"""Housekeeping: OPTIMIZE compacts the staging tables, VACUUM removes unreferenced files."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import dagster as dg

from assets.ehr.etl_lock import ETL_LOCK_TABLE, EtlLockStore, LockOwner
from assets.ehr.etl_state import (
    COORDINATION_LOG_RETENTION,
    ETL_STATE_TABLE,
    EtlStateStore,
    compact_coordination_table,
)
from assets.features.tables import feature_key
from assets.housekeeping import (
    FEATURE_HOUSEKEEPING_LOG,
    HOUSEKEEPING_LOG,
    build_defs,
    housekept_tables,
    tidy_table,
)
from assets.reporting.staging import STAGING_KEYS, staging_key
from flowehr_pipelines.config import load_settings
from resources import progress
from tests.assets.reporting_world import NOW, Lake, item, lines
from tests.flowehr_pipelines.researcher.test_store import feature_rows, news2_row
from tests.lakes import local_store
from tests.reporting_keys import REPORTING_QUERY_KEYS, REPORTING_VIEW_KEYS
from transforms.features.pipeline import FEATURE_TABLES

ITEMS = ("reporting", "request_item_status")


def fragmented(tmp_path: Path, runs: int = 4) -> Lake:
    """A lake whose staging tables were merged into several times (many small files)."""
    lake = Lake.at(tmp_path / "lake")
    for run in range(runs):
        at = NOW - timedelta(hours=runs - run)
        lake.land(f"run-{run}", lines([item(f"i{run}-{n}", at, "SENDING") for n in range(3)]))
        lake.cycle()
    return lake


def values(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The housekeeping materialisation's metadata as plain values."""
    event = result.get_asset_materialization_events()[0]
    assert event.materialization is not None
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def housekeeping_asset(settings: Any, key: dg.AssetKey) -> dg.AssetsDefinition:
    assets = cast(list[dg.AssetsDefinition], build_defs(settings).assets)
    [asset] = [a for a in assets if a.key == key]
    return asset


def test_tidy_table_compacts_and_vacuums(tmp_path: Path):
    lake = fragmented(tmp_path)
    before = lake.rows("request_item_status")
    counts = tidy_table(lake.delta, ITEMS, retention_hours=0)
    assert counts["active_files_before"] > 1
    assert counts["active_files_after"] == 1
    assert counts["files_compacted"] == counts["active_files_before"]
    assert counts["stored_files_before"] > counts["stored_files_after"] == 1
    assert counts["files_vacuumed"] == counts["stored_files_before"]
    assert lake.rows("request_item_status") == before  # data untouched


def test_vacuum_keeps_files_younger_than_the_retention(tmp_path: Path):
    lake = fragmented(tmp_path)
    counts = tidy_table(lake.delta, ITEMS, retention_hours=168)
    assert counts["active_files_after"] == 1
    assert counts["files_vacuumed"] == 0
    assert counts["stored_files_after"] == counts["stored_files_before"] + 1


def test_housekeeping_asset_covers_every_staging_table_and_logs_once_per_run(tmp_path: Path):
    lake = fragmented(tmp_path)
    settings = load_settings()
    asset = housekeeping_asset(settings, HOUSEKEEPING_LOG)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([asset], instance=instance, resources={"delta": lake.delta})
    assert result.success
    metadata = values(result)
    assert metadata["tables_housekept"] == len(STAGING_KEYS)
    # No view or feature table was built in this lake: they are skipped as well.
    not_yet = metadata["tables_not_yet_created"]
    internal = [t for t in not_yet if t.startswith("internal/")]
    assert internal == ["internal/watchdog_metrics", "internal/etl_state", "internal/etl_locks"]
    views = {t for t in not_yet if t.startswith("reporting/")}
    assert views == REPORTING_VIEW_KEYS | REPORTING_QUERY_KEYS
    assert not [t for t in not_yet if t.startswith("gold/")]  # the feature asset's tables
    # Items only: the plan tables (and the plan summaries) exist but are empty.
    filled = {k.path[-1] for k in STAGING_KEYS if lake.delta.read(k.path).num_rows}
    assert filled == {
        "request_item_status",
        "client_latest_name",
        "request_item_status_summary",
        "request_item_status_summary_batch",
    }
    non_empty = len(filled)
    assert metadata["active_files_after"] == non_empty  # one file per table
    assert metadata["active_files_before"] > metadata["active_files_after"]
    assert metadata["retention_hours"] == settings.housekeeping.vacuum_retention_hours
    observed = {
        e.asset_observation_data.asset_observation.asset_key
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    }
    assert observed == set(STAGING_KEYS)
    log = lake.delta.read(HOUSEKEEPING_LOG.path)
    assert log.num_rows == len(STAGING_KEYS)
    assert set(log["run_id"].to_pylist()) == {result.run_id}
    # A second run changes no data and adds its own log rows.
    again = dg.materialize([asset], instance=instance, resources={"delta": lake.delta})
    assert lake.delta.read(HOUSEKEEPING_LOG.path).num_rows == 2 * len(STAGING_KEYS)
    assert values(again)["active_files_before"] == non_empty


def test_housekeeping_logs_tables_done_of_total(tmp_path: Path, monkeypatch: Any):
    monkeypatch.setattr(progress, "DEFAULT_INTERVAL_SECONDS", 0.0)  # a line per table
    lake = fragmented(tmp_path)
    asset = housekeeping_asset(load_settings(), HOUSEKEEPING_LOG)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([asset], instance=instance, resources={"delta": lake.delta})
    assert result.success
    lines = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if not e.is_dagster_event and e.user_message.startswith("progress internal/")
    ]
    total = len(housekept_tables())
    assert any(f"{total} of {total} tables done (100%)" in line for line in lines)
    assert any("OPTIMIZE and VACUUM of reporting/" in line for line in lines)


def test_housekept_tables_are_the_reporting_tables_views_and_the_watchdog_series():
    tables = housekept_tables()
    assert [tuple(t) for t in tables[: len(STAGING_KEYS)]] == [tuple(k.path) for k in STAGING_KEYS]
    views = {"/".join(t) for t in tables[len(STAGING_KEYS) : -3]}
    assert views == REPORTING_VIEW_KEYS | REPORTING_QUERY_KEYS
    assert [tuple(t) for t in tables[-3:]] == [
        ("internal", "watchdog_metrics"),
        ("internal", "etl_state"),
        ("internal", "etl_locks"),
    ]
    assert staging_key("client_latest_name") in STAGING_KEYS


def test_coordination_tables_are_compacted_vacuumed_and_their_log_trimmed(tmp_path: Path):
    """Every state change and lock heartbeat is a commit; compaction leaves one file."""
    lake = Lake.at(tmp_path / "lake")
    state = EtlStateStore(lake.delta)
    locks = EtlLockStore(lake.delta, stale_after=timedelta(hours=2))
    for n in range(12):
        state.set("ehr", f"t{n % 4}", changelog_number=n, load_mode="changelog", rows_loaded=n)
        locks.release(locks.acquire("ehr", LockOwner("run", "host", 1, "load")))
    week_ago = time.time() - 8 * 24 * 3600
    for table in (ETL_STATE_TABLE, ETL_LOCK_TABLE):
        assert lake.delta.stored_file_count(table) > 10
        log = Path(lake.delta.uri(table), "_delta_log")
        counts = compact_coordination_table(lake.delta, table, retention_hours=0)
        assert counts["stored_files_after"] <= 1 < counts["stored_files_before"]
        assert counts["active_files_after"] <= 1
        assert list(log.glob("*.checkpoint.parquet")), "a checkpoint keeps reads cheap"
        configuration = lake.delta.table(table).metadata().configuration
        assert configuration["delta.logRetentionDuration"] == COORDINATION_LOG_RETENTION
        entries_before = len(list(log.glob("*.json")))
        assert entries_before > 12
        for entry in log.iterdir():  # a week passes: the history ages past the retention
            os.utime(entry, (week_ago, week_ago))
    for n in range(3):
        state.set("ehr", f"t{n}", changelog_number=20 + n, load_mode="changelog", rows_loaded=n)
        locks.release(locks.acquire("ehr", LockOwner("run", "host", 1, "load")))
    expected_state = lake.delta.read(ETL_STATE_TABLE).sort_by("table_name")
    for table in (ETL_STATE_TABLE, ETL_LOCK_TABLE):
        compact_coordination_table(lake.delta, table, retention_hours=0)
        log = Path(lake.delta.uri(table), "_delta_log")
        assert len(list(log.glob("*.json"))) < 12, "log entries older than the retention go"
    assert lake.delta.read(ETL_STATE_TABLE).sort_by("table_name") == expected_state
    assert locks.holder("ehr") is None
    # The lock's compare-and-swap carries on from the compacted table's version.
    lock = locks.acquire("ehr", LockOwner("run-2", "host", 1, "load"))
    assert locks.holder("ehr") == lock
    state.set("ehr", "t0", changelog_number=99, load_mode="changelog", rows_loaded=1)
    assert state.get("ehr", "t0").changelog_number == 99  # type: ignore[union-attr]


def test_housekeeping_asset_compacts_the_coordination_tables_it_finds(tmp_path: Path):
    lake = fragmented(tmp_path)
    EtlStateStore(lake.delta).set(
        "ehr", "patients", changelog_number=1, load_mode="bulk", rows_loaded=1
    )
    asset = housekeeping_asset(load_settings(), HOUSEKEEPING_LOG)
    result = dg.materialize([asset], resources={"delta": lake.delta})
    assert result.success
    metadata = values(result)
    assert "internal/etl_state" in metadata["by_table"]
    internal = [t for t in metadata["tables_not_yet_created"] if t.startswith("internal/")]
    assert internal == ["internal/watchdog_metrics", "internal/etl_locks"]


def test_housekeeping_folds_superseded_ehr_bronze_rows_keeping_the_current_view(
    tmp_path: Path,
):
    import pyarrow as pa

    from assets.ehr.bronze_view import LOAD_COLUMN, read_current
    from assets.housekeeping import compact_bronze

    settings = load_settings()
    connection = settings.data_source_connections[0]
    spec = connection.tables[0]
    [key] = spec.primary_key
    path = ("bronze", connection.name, spec.name)
    delta = local_store(tmp_path / "lake")
    for ids, load in (([1, 2, 3], 10), ([2], 20)):
        delta.append(
            path,
            pa.table(
                {
                    key: pa.array(ids, pa.int64()),
                    "change_seq": pa.array([load + i for i in ids], pa.int64()),
                    LOAD_COLUMN: pa.array([load] * len(ids), pa.int64()),
                }
            ),
        )
    current = read_current(delta, path, [key]).sort_by(key)
    assert compact_bronze(delta, settings)["/".join(path)] == 1
    assert delta.read(path).num_rows == current.num_rows == 3
    assert read_current(delta, path, [key]).sort_by(key).equals(current)
    assert compact_bronze(delta, settings)["/".join(path)] == 0  # safe to re-run


def test_feature_tables_keep_their_history_for_the_configured_days(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    news2 = feature_key("news2").path
    lake.delta.overwrite(news2, feature_rows("news2", [news2_row(1, 1, 3)]))
    lake.delta.overwrite(news2, feature_rows("news2", [news2_row(1, 1, 4)]))
    settings = load_settings()
    asset = housekeeping_asset(settings, FEATURE_HOUSEKEEPING_LOG)
    assert set(asset.dependency_keys) == {feature_key(name) for name in FEATURE_TABLES}
    result = dg.materialize([asset], resources={"delta": lake.delta})
    assert result.success
    days = settings.housekeeping.feature_history_days
    configuration = lake.delta.table(news2).metadata().configuration
    assert configuration["delta.logRetentionDuration"] == f"interval {days} days"
    assert configuration["delta.deletedFileRetentionDuration"] == f"interval {days} days"
    # The superseded version is younger than the retention: still readable in full.
    first = lake.delta.read(news2, version=0).to_pylist()
    assert [r["news2_total"] for r in first] == [3]
    log = lake.delta.read(FEATURE_HOUSEKEEPING_LOG.path).to_pylist()
    [row] = [r for r in log if r["table_name"] == "gold/features/news2"]
    assert (row["retention_hours"], row["files_vacuumed"], row["files_compacted"]) == (
        days * 24,
        0,
        0,
    )
    assert not lake.delta.keep_history(news2, days=days)  # already set: no new commit
