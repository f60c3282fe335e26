"""``flowehr run``: materialise the asset graph (or a selection) and print a summary."""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flowehr_pipelines.cli.common import (
    EXIT_FAILED,
    UserFacingError,
    friendly_errors,
    load_cli_settings,
)

if TYPE_CHECKING:
    from flowehr_pipelines.config import Settings


def _instance(settings: Settings) -> Any:
    import dagster as dg

    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    # An empty dagster.yaml is Dagster's defaults; without one it warns on every open.
    (settings.dagster_home / "dagster.yaml").touch(exist_ok=True)
    # Dagster's public way to open an instance reads DAGSTER_HOME; the settings already
    # resolved it (from the environment, or the data directory's default).
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return dg.DagsterInstance.get()


@click.command("run")
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
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Materialise every asset, also those whose inputs did not change since the last run.",
)
def run(selection: str | None, sequential: bool, no_wait: bool, everything: bool) -> None:
    """Materialise the asset graph and print a summary.

    Without --select or --all, only what changed runs: the sources are observed first,
    and assets whose inputs, code and schedule did not change since the last successful
    run are skipped (the summary says which and why).

    Parts of the graph that share no asset (EHR to features, CDC log to reports) run
    at the same time, each as its own Dagster run in its own process. One run at a
    time uses a data directory: a second waits for the first (or, with --no-wait,
    refuses).
    """
    loading = time.perf_counter()
    from flowehr_pipelines.definitions import defs
    from flowehr_pipelines.doctor.lake import s3_credentials_problem
    from flowehr_pipelines.run.run_lock import RunLockHeldError, run_lock
    from flowehr_pipelines.run.runner import format_summary, run_assets

    settings = load_cli_settings()
    if problem := s3_credentials_problem(settings):
        raise UserFacingError(problem)
    with friendly_errors(), ExitStack() as stack:
        definitions = defs()
        loaded = time.perf_counter() - loading
        _check_sources(settings, definitions, selection)
        try:
            stack.enter_context(run_lock(settings.dagster_home, wait=not no_wait, on_wait=_note))
        except RunLockHeldError as exc:
            raise UserFacingError(str(exc)) from None
        instance = _instance(settings)
        started = time.perf_counter()
        summary = run_assets(
            definitions,
            instance,
            selection=selection,
            concurrent=not sequential,
            skip_unchanged=not everything,
        )
        summary.fixed_costs = {"Dagster import, definitions load": loaded, **summary.fixed_costs}
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
