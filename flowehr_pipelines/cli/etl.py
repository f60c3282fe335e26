"""flowehr etl: head-state and clear-state of the changelog loads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from flowehr_pipelines.cli.common import (
    StderrLog,
    UserFacingError,
    format_table,
    friendly_errors,
    load_cli_settings,
)

if TYPE_CHECKING:
    from flowehr_pipelines.config import Settings


@click.group("etl")
def etl() -> None:
    """Inspect or reset the changelog numbers of source loads."""


def _state_store(settings: Settings) -> Any:
    from assets.ehr.etl_state import EtlStateStore
    from flowehr_pipelines.deployment import build_delta_store

    return EtlStateStore(build_delta_store(settings))


@etl.command("head-state")
@click.option("--source", help="Only this data source connection.")
def head_state(source: str | None) -> None:
    """Show each source table's stored changelog number, its lag behind the source, and locks."""
    from flowehr_pipelines.cli.etl_report import head_state_report

    settings = load_cli_settings()
    with friendly_errors():
        if source:
            settings.connection(source)
        report = head_state_report(settings, source)
    click.echo(format_table(report.header, report.rows))
    for note in report.notes:
        click.echo(note)


@etl.command("clear-state")
@click.option("--source", help="Only this data source connection (default: all).")
@click.option(
    "--set-changelog-number",
    type=click.IntRange(min=0),
    help="Set the changelog number instead of clearing it (next load starts after it).",
)
@click.option("--yes", is_flag=True, help="Confirm: required, because the next load may be bulk.")
def clear_state(source: str | None, set_changelog_number: int | None, yes: bool) -> None:
    """Clear (or set) stored changelog numbers, forcing a bulk (or partial) reload."""
    if not yes:
        raise UserFacingError("refusing to change ETL state without --yes")
    from assets.ehr.etl_lock import EtlLockHeldError
    from flowehr_pipelines.cli.etl_report import maintenance_lock

    settings = load_cli_settings()
    store = _state_store(settings)
    with friendly_errors():
        connections = [settings.connection(source)] if source else settings.data_source_connections
        for connection in connections:
            try:
                # Held while changing state, so no load of the source runs meanwhile.
                with maintenance_lock(
                    settings, connection.name, purpose="clear-state", log=StderrLog()
                ):
                    click.echo(_change_state(store, connection, set_changelog_number))
            except EtlLockHeldError as exc:
                raise UserFacingError(f"refusing to change ETL state: {exc}") from None


def _change_state(store: Any, connection: Any, changelog_number: int | None) -> str:
    if changelog_number is None:
        removed = store.clear(connection.name)
        return f"{connection.name}: cleared {removed} changelog number(s)"
    for table in connection.tables:
        store.set(
            connection.name,
            table.name,
            changelog_number=changelog_number,
            load_mode="manual",
            rows_loaded=0,
        )
    return (
        f"{connection.name}: {len(connection.tables)} table(s) set to changelog "
        f"number {changelog_number}"
    )
