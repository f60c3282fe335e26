"""Housekeeping: OPTIMIZE compacts the staging tables, VACUUM removes unreferenced files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import dagster as dg

from assets.housekeeping import HOUSEKEEPING_LOG, build_defs, housekept_tables, tidy_table
from assets.reporting import STAGING_KEYS, staging_key
from flowehr_pipelines.config import load_settings
from tests.assets.reporting_world import NOW, Lake, item, lines

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
    [asset] = cast(list[dg.AssetsDefinition], build_defs(settings).assets)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([asset], instance=instance, resources={"delta": lake.delta})
    assert result.success
    metadata = values(result)
    assert metadata["tables_housekept"] == len(STAGING_KEYS)
    assert metadata["tables_not_yet_created"] == ["internal/watchdog_metrics"]
    # Items only: the plan and client tables (and the plan summary) exist but are empty.
    non_empty = sum(1 for k in STAGING_KEYS if lake.delta.read(k.path).num_rows)
    assert non_empty == 2
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


def test_housekept_tables_are_the_staging_tables_and_the_watchdog_series():
    tables = housekept_tables()
    assert [tuple(t) for t in tables[:-1]] == [tuple(k.path) for k in STAGING_KEYS]
    assert tuple(tables[-1]) == ("internal", "watchdog_metrics")
    assert staging_key("client_latest_name") in STAGING_KEYS
