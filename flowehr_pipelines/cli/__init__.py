"""The ``flowehr`` command: demo data, runs, ETL state and table listings.

A thin entry point: it loads settings, builds resources and calls the same code the
Dagster assets call. Expected problems (bad config, unreachable source, missing
secret) print one line and exit 2; a failed run exits 1.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from flowehr_pipelines.cli.common import (
    EXIT_FAILED,
    UserFacingError,
    format_table,
    friendly_errors,
    load_cli_settings,
)
from flowehr_pipelines.cli.docs import docs
from flowehr_pipelines.cli.doctor import doctor
from flowehr_pipelines.cli.etl import etl
from flowehr_pipelines.cli.features import features
from flowehr_pipelines.cli.governance import governance
from flowehr_pipelines.cli.metrics import metrics
from flowehr_pipelines.config import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """FlowEHR Pipelines: EHR sources to research features, CDC logs to NHS reports."""


@main.command("demo-data")
@click.option("--patients", type=click.IntRange(min=1), help="Patients in the EHR source.")
@click.option("--days", type=click.IntRange(min=1), help="Days of history to generate.")
@click.option("--events-per-day", type=click.IntRange(min=1), help="CDC records per day.")
@click.option("--seed", type=int, help="Random seed: same seed, same data.")
@click.option(
    "--start-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First day (default: so that the period ends today).",
)
@click.option("--if-missing", is_flag=True, help="Do nothing when the source database exists.")
def demo_data(
    patients: int | None,
    days: int | None,
    events_per_day: int | None,
    seed: int | None,
    start_date: datetime | None,
    if_missing: bool,
) -> None:
    """Write the embedded EHR source database and CDC landing files."""
    from flowehr_pipelines.synthetic import write_cdc_landing, write_ehr_source

    settings = load_cli_settings()
    defaults = settings.demo_data
    connection = settings.data_source_connections[0]
    url = settings.source_url(connection)
    if not url.startswith("sqlite:///"):
        raise UserFacingError(f"demo data goes to an embedded SQLite source, not {connection.name}")
    if settings.lake_is_s3:
        raise UserFacingError("demo data writes landing files to a local lake only")
    db_path = Path(url.removeprefix("sqlite:///"))
    if if_missing and db_path.exists():
        click.echo(f"demo data present: {db_path}")
        return
    n_days = days or defaults.days
    first = start_date.date() if start_date else date.today() - timedelta(days=n_days - 1)
    the_seed = defaults.seed if seed is None else seed
    n_patients = patients or defaults.patients
    period = f"{first} to {first + timedelta(days=n_days - 1)}, seed {the_seed}"
    click.echo(f"generating {period}: EHR source for {n_patients:,} patients ...")
    with friendly_errors():
        db_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        ehr = write_ehr_source(
            db_path, patients=n_patients, days=n_days, start_date=first, seed=the_seed
        )
        ehr_seconds = time.perf_counter() - started
        rows = ehr.patients + ehr.visits + ehr.observations + ehr.lab_results + ehr.diagnoses
        click.echo(
            f"EHR source {db_path}: {ehr.patients:,} patients, {ehr.visits:,} visits, "
            f"{ehr.observations:,} observations, {ehr.lab_results:,} lab results, "
            f"{ehr.diagnoses:,} diagnoses ({_rate(rows, ehr_seconds)})"
        )
        click.echo("generating CDC landing files ...")
        started = time.perf_counter()
        cdc = write_cdc_landing(
            Path(settings.landing_root),
            days=n_days,
            events_per_day=events_per_day or defaults.events_per_day,
            start_date=first,
            seed=the_seed,
        )
        cdc_seconds = time.perf_counter() - started
    click.echo(
        f"CDC landing {settings.landing_root}: {cdc.records:,} records in {len(cdc.files)} files "
        f"({cdc.duplicates:,} re-delivered, {sum(cdc.malformed.values()):,} malformed; "
        f"{_rate(cdc.records, cdc_seconds)})"
    )


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / max(seconds, 1e-9):,.0f} rows/s in {seconds:.1f}s"


def _instance(settings: Settings) -> Any:
    import dagster as dg

    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    # An empty dagster.yaml is Dagster's defaults; without one it warns on every open.
    (settings.dagster_home / "dagster.yaml").touch(exist_ok=True)
    # Dagster's public way to open an instance reads DAGSTER_HOME; the settings already
    # resolved it (from the environment, or the data directory's default).
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return dg.DagsterInstance.get()


@main.command("run")
@click.option(
    "--select",
    "selection",
    help="Dagster asset selection, e.g. 'group:reporting' or 'key:bronze/ehr/patients+'.",
)
@click.option(
    "--sequential",
    is_flag=True,
    help="Run the graph's independent parts one after another, not at the same time.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Refuse at once if another flowehr run is using this data directory (default: wait).",
)
def run(selection: str | None, sequential: bool, no_wait: bool) -> None:
    """Materialise the asset graph and print a summary.

    Parts of the graph that share no asset (EHR to features, CDC log to reports) run
    at the same time, each as its own Dagster run in its own process. One run at a
    time uses a data directory: a second waits for the first (or, with --no-wait,
    refuses).
    """
    from flowehr_pipelines.definitions import defs
    from flowehr_pipelines.doctor.lake import s3_credentials_problem
    from flowehr_pipelines.run.run_lock import RunLockHeldError, run_lock
    from flowehr_pipelines.run.runner import format_summary, run_assets

    settings = load_cli_settings()
    if problem := s3_credentials_problem(settings):
        raise UserFacingError(problem)
    with friendly_errors(), ExitStack() as stack:
        definitions = defs()
        _check_sources(settings, definitions, selection)
        try:
            stack.enter_context(run_lock(settings.dagster_home, wait=not no_wait, on_wait=_note))
        except RunLockHeldError as exc:
            raise UserFacingError(str(exc)) from None
        instance = _instance(settings)
        started = time.perf_counter()
        summary = run_assets(definitions, instance, selection=selection, concurrent=not sequential)
    click.echo(format_summary(summary))
    click.echo(
        f"\nwall time {time.perf_counter() - started:.1f}s; DAGSTER_HOME={settings.dagster_home}"
    )
    if not summary.success:
        sys.exit(EXIT_FAILED)


def _note(message: str) -> None:
    click.echo(message, err=True)


def _check_sources(settings: Settings, definitions: Any, selection: str | None) -> None:
    """Connect once to each source the run loads, so a bad URL or password is one line.

    Without it the run starts, the bronze step fails inside Dagster and the user reads a
    step failure (with its stack trace) among the run's logs.

    Raises:
        SourceUnavailableError: naming the source (password masked) and the reason.
    """
    import sqlalchemy as sa

    from flowehr_pipelines.deployment import build_sql_source
    from flowehr_pipelines.run.runner import resolve_selection
    from resources.sql_source import SourceUnavailableError

    keys = resolve_selection(definitions, selection)
    for connection in settings.data_source_connections:
        bronze = ("bronze", connection.name)
        if keys is not None and not any(tuple(k.path[:2]) == bronze for k in keys):
            continue
        url = settings.source_url(connection)
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            raise SourceUnavailableError(
                f"source '{connection.name}' has no database at {url.removeprefix('sqlite:///')}"
                " (run `flowehr demo-data` first)"
            )
        source = build_sql_source(settings, connection, direct=True)
        try:
            with source.connect() as conn:
                present = set(sa.inspect(conn).get_table_names())
        finally:
            source.engine.dispose()
        missing = [t.name for t in connection.tables if t.name not in present]
        if missing:
            raise SourceUnavailableError(
                f"source '{connection.name}' ({source.display_url()}) has no table "
                f"{', '.join(repr(m) for m in missing)}"
            )


PUBLISHED_ZONES = ("gold", "reporting")


@main.command("tables")
def tables() -> None:
    """List the published tables with their Delta version and row count."""
    from flowehr_pipelines.definitions import defs
    from flowehr_pipelines.deployment import build_delta_store
    from resources.delta.store import logged_row_count

    settings = load_cli_settings()
    rows = []
    with friendly_errors():
        delta = build_delta_store(settings)
        # The asset graph names every published table, so this works on S3 as on disk.
        keys = sorted(
            tuple(key.path)
            for key in defs().resolve_asset_graph().get_all_asset_keys()
            if key.path[0] in PUBLISHED_ZONES
        )
        for path in keys:
            if not delta.exists(path):
                continue
            dt = delta.table(path)
            rows.append(("/".join(path), str(dt.version()), f"{logged_row_count(dt):,}"))
    if not rows:
        click.echo("no published tables yet: run `flowehr run` first")
        return
    click.echo(format_table(("table", "version", "rows"), rows))


@main.command("privacy-scan")
def privacy_scan() -> None:
    """Search the published zones for the sources' patient identifiers; exit 1 on a leak.

    Findings name the table or file, the column and the kind of identifier, never the value.
    """
    from flowehr_pipelines.privacy_scan_lake import scan_lake

    settings = load_cli_settings()
    with friendly_errors():
        known, result = scan_lake(settings)
    if not known.count:
        click.echo("warning: no identifiers found in the sources; shapes only", err=True)
    for finding in result.findings:
        click.echo(f"LEAK {finding.describe()}")
    scanned = f"{len(result.tables)} table(s) and {len(result.files)} file(s)"
    if result.findings:
        click.echo(f"{len(result.findings)} leak(s) in {scanned} of the published zones", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(
        f"no patient identifiers in {scanned} of the published zones "
        f"({known.count:,} source identifier values compared); every count of people "
        "obeys its disclosure rule"
    )


main.add_command(etl)
main.add_command(features)
main.add_command(governance)
main.add_command(docs)
main.add_command(doctor)
main.add_command(metrics)

if __name__ == "__main__":
    main()
