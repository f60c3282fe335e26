"""Reporting-cycle benchmarks: the product against the plain DuckDB peer, and window scaling."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench.data import (
    BIN,
    ROOT,
    WINDOW_HISTORIES,
    WINDOW_SPEC,
    discard,
    fresh_copy,
    generate,
    run_env,
)
from bench.measure import (
    Measurement,
    run_command,
    summarise,
    time_call,
)


def _product_views(data_dir: Path, as_of: datetime) -> None:
    """Pass 3: every view and query table recomputed and overwritten, in this process."""
    from assets.reporting.views import refresh_view
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store
    from transforms.reporting.views import QUERIES, VIEWS, ViewParameters

    delta = build_delta_store(load_settings({**os.environ, **run_env(data_dir)}))
    parameters = ViewParameters(as_of.astimezone(UTC).date())
    for spec in (*VIEWS, *QUERIES):
        refresh_view(spec, delta=delta, parameters=parameters)


def _product_cycle(data_dir: Path, as_of: datetime, *, first: bool) -> None:
    """Pass 1 (three projections) then pass 2 (two aggregations), in this process."""
    from assets.reporting.staging import refresh_aggregation, refresh_projection
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store
    from resources.pseudonymiser import PSEUDONYMISATION_KEY_ENV, Pseudonymiser
    from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS

    settings = load_settings({**os.environ, **run_env(data_dir)})
    reporting = settings.reporting
    delta = build_delta_store(settings)
    pseudonymiser = Pseudonymiser(key=settings.secret(PSEUDONYMISATION_KEY_ENV))
    initial = reporting.initial_window_days if first else None
    for spec in PROJECTIONS:
        refresh_projection(
            spec,
            delta=delta,
            pseudonymise=pseudonymiser.hash_value,
            as_of=as_of,
            window_days=reporting.projection_window_days,
            tz=reporting.timezone,
            initial_window_days=initial,
        )
    for agg in AGGREGATIONS:
        refresh_aggregation(
            agg,
            delta=delta,
            as_of=as_of,
            window_days=reporting.aggregation_window_days,
            window_months=reporting.aggregation_window_months,
            initial_window_days=initial,
        )


LANDING = Path("lake") / "landing" / "transaction_history"


def _hold_back_last_landing_file(data_dir: Path) -> tuple[Path, Path]:
    """Move the newest landed CDC file aside: it arrives between the two cycles."""
    newest = sorted((data_dir / LANDING).rglob("*.jsonl"))[-1]
    held = data_dir / "held" / newest.relative_to(data_dir)
    held.parent.mkdir(parents=True, exist_ok=True)
    newest.rename(held)
    return held, newest


def _ingest_in_process(data_dir: Path) -> None:
    """Land pending CDC files into bronze (the untimed step before an incremental cycle)."""
    import logging

    from assets.reporting.ingestion import ingest_landing_files
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store, build_object_store

    settings = load_settings({**os.environ, **run_env(data_dir)})
    ingest_landing_files(
        objects=build_object_store(settings),
        delta=build_delta_store(settings),
        now=datetime.now(UTC),
        log=logging.getLogger("bench"),  # type: ignore[arg-type]
    )


def _prepare_incremental(data_dir: Path) -> tuple[datetime, list[str]]:
    """Bronze without the newest file, the product's first (migration) load and one
    steady cycle, then the newest file landed: the state an incremental cycle starts
    from (the caller loads the peer and ingests the file).

    Returns:
        The initial cycle's as-of time and bronze's files before the new one.
    """
    held, landed = _hold_back_last_landing_file(data_dir)
    run_command(
        [str(BIN / "flowehr"), "run", "--select", "key:bronze/transaction_history"],
        env=run_env(data_dir),
        cwd=str(ROOT),
        log_path=str(data_dir / "ingest.log"),
    )
    as_of = datetime.now(UTC)
    _product_cycle(data_dir, as_of, first=True)
    # One untimed cycle with the default windows: the steady state of hourly cycles.
    _product_cycle(data_dir, as_of, first=False)
    held.rename(landed)
    return as_of, _bronze_files(data_dir)


def _bronze_files(data_dir: Path) -> list[str]:
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store

    os.environ.update(run_env(data_dir))
    return build_delta_store(load_settings()).table(("bronze", "transaction_history")).file_uris()


def bench_reporting(scale: str, repeat: int) -> dict[str, Any]:
    """One reporting cycle (pass 1 + pass 2, default windows) against the DuckDB peer,
    then pass 3 (the 23 views and the query table) on each side, timed apart.

    Both start from the same bronze and the same initial load (untimed); then the
    newest landed file is ingested (untimed) and one incremental cycle each is timed,
    in the same process, on the same data. The peer re-projects its whole window each
    cycle, as a DuckDB user's MERGE would, and rebuilds each view as a DuckDB table.
    The ratio is pass 1 + 2's, comparable with earlier rounds; ``views_ratio`` pass 3's.
    """
    from assets.reporting.views import view_key
    from bench.peer_duckdb import open_database, run_cycle, run_views
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.deployment import build_delta_store
    from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS
    from transforms.reporting.views import QUERIES, VIEWS

    source = generate(scale)
    product: list[Measurement] = []
    peer: list[Measurement] = []
    product_views: list[Measurement] = []
    peer_views: list[Measurement] = []
    for i in range(repeat):
        data_dir = fresh_copy(source, f"reporting-{scale}-{i}")
        as_of, before = _prepare_incremental(data_dir)
        settings = load_settings()
        connection = open_database(data_dir / "peer.duckdb")
        first_window = settings.reporting.initial_window_days
        run_cycle(
            connection,
            before,
            as_of=as_of,
            projection_days=first_window,
            aggregation_days=first_window,
        )
        steady = partial(
            run_cycle,
            connection,
            before,
            as_of=as_of,
            projection_days=settings.reporting.projection_window_days,
            aggregation_days=settings.reporting.aggregation_window_days,
            aggregation_months=settings.reporting.aggregation_window_months,
        )
        steady()  # as the product: one untimed cycle with the default windows
        _ingest_in_process(data_dir)
        files = _bronze_files(data_dir)
        later = as_of + timedelta(hours=1)
        product.append(time_call(partial(_product_cycle, data_dir, later, first=False)))
        peer_cycle = partial(
            run_cycle,
            connection,
            files,
            as_of=later,
            projection_days=settings.reporting.projection_window_days,
            aggregation_days=settings.reporting.aggregation_window_days,
            aggregation_months=settings.reporting.aggregation_window_months,
        )
        peer.append(time_call(peer_cycle))
        product_views.append(time_call(partial(_product_views, data_dir, later)))
        peer_views.append(time_call(partial(run_views, connection, as_of=later)))
        # Same data, same SQL: the two sides must agree, or the comparison means nothing.
        delta = build_delta_store(settings)
        # The peer builds no batch table: no batch client is configured, as by default.
        tables = [spec.table for spec in PROJECTIONS] + [
            spec.table for spec in AGGREGATIONS if not spec.batch_clients_only
        ]
        rows = {}
        for table in tables:
            counted = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            rows[table] = {
                "product": delta.read(("reporting", table), columns=[]).num_rows,
                "duckdb_peer": counted[0] if counted else None,
            }
        for spec in (*VIEWS, *QUERIES):
            counted = connection.execute(f"SELECT count(*) FROM {spec.name}").fetchone()
            rows[spec.name] = {
                "product": delta.read(view_key(spec.name).path, columns=[]).num_rows,
                "duckdb_peer": counted[0] if counted else None,
            }
        connection.close()
        discard(data_dir)
    result: dict[str, Any] = {
        "cycle": "steady cycle after one newly landed CDC file",
        "product": summarise(product),
        "duckdb_peer": summarise(peer),
        "product_views": summarise(product_views),
        "duckdb_peer_views": summarise(peer_views),
        "rows_after_cycle": rows,
    }
    result["ratio"] = round(
        result["product"]["median_seconds"] / result["duckdb_peer"]["median_seconds"], 3
    )
    result["views_ratio"] = round(
        result["product_views"]["median_seconds"] / result["duckdb_peer_views"]["median_seconds"],
        3,
    )
    result["rows_agree"] = all(sides["product"] == sides["duckdb_peer"] for sides in rows.values())
    return result


def bench_windows(repeat: int) -> dict[str, Any]:
    """One incremental reporting cycle with 7, 90 and 365 days of history.

    Every history has the same daily volume (``WINDOW_SPEC``), so only its length
    differs; the cycle (default windows) should cost the same for all three.
    """
    results: dict[str, Any] = {"spec": WINDOW_SPEC, "histories": {}}
    for days in WINDOW_HISTORIES:
        source = generate(f"history-{days}d", {**WINDOW_SPEC, "days": days})
        samples = []
        for i in range(repeat):
            data_dir = fresh_copy(source, f"history-{days}d-{i}")
            as_of, _ = _prepare_incremental(data_dir)
            _ingest_in_process(data_dir)
            later = as_of + timedelta(hours=1)
            samples.append(time_call(partial(_product_cycle, data_dir, later, first=False)))
            shutil.rmtree(data_dir, ignore_errors=True)
        results["histories"][str(days)] = summarise(samples)
    shortest = results["histories"][str(WINDOW_HISTORIES[0])]["median_seconds"]
    longest = results["histories"][str(WINDOW_HISTORIES[-1])]["median_seconds"]
    results["ratio_longest_to_shortest"] = round(longest / shortest, 3)
    return results
