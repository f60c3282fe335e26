"""``flowehr tables`` and ``flowehr privacy-scan``: what the published zones hold."""

from __future__ import annotations

import sys

import click

from flowehr_pipelines.cli.common import (
    EXIT_FAILED,
    format_table,
    friendly_errors,
    load_cli_settings,
)

PUBLISHED_ZONES = ("gold", "reporting")


@click.command("tables")
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


@click.command("privacy-scan")
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
