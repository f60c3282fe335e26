"""``flowehr docs``: documents generated from the code location.

``data-dictionary`` writes ``docs/data_dictionary.md`` from the published tables'
catalogue metadata; with ``--check`` it writes nothing and exits 1 when the file is
stale, for CI.
"""

from __future__ import annotations

from pathlib import Path

import click

EXIT_STALE = 1


@click.group("docs")
def docs() -> None:
    """Generated documentation: the data dictionary."""


@docs.command("data-dictionary")
@click.option("--check", is_flag=True, help="Exit 1 when the file is stale; write nothing.")
@click.option(
    "--path",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the Markdown goes (default docs/data_dictionary.md in the repository).",
)
def data_dictionary(check: bool, path: Path | None) -> None:
    """Render the published tables' data dictionary as Markdown."""
    from flowehr_pipelines.data_dictionary import DOCUMENT, REGENERATE, render_data_dictionary
    from flowehr_pipelines.definitions import defs

    target = path or DOCUMENT
    text = render_data_dictionary(defs())
    current = target.read_text() if target.exists() else None
    if check:
        if current != text:
            click.echo(f"{target} is stale: run `{REGENERATE}`", err=True)
            raise SystemExit(EXIT_STALE)
        click.echo(f"{target} is up to date")
        return
    if current == text:
        click.echo(f"{target} unchanged")
        return
    target.write_text(text)
    click.echo(f"wrote {target}")
