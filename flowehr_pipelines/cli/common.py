"""What every flowehr command shares: exit codes, one-line errors, settings loading, plain
tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from flowehr_pipelines.config import Settings

EXIT_FAILED = 1
EXIT_USAGE = 2


class UserFacingError(click.ClickException):
    """An error worth one line, not a traceback."""

    exit_code = EXIT_USAGE


def load_cli_settings() -> Settings:
    """The deployment's settings; a config problem becomes one line and exit 2.

    Imported here, not at module level, so a command's ``--help`` never loads them.
    """
    from flowehr_pipelines.config import load_settings
    from resources.settings import ConfigError

    try:
        return load_settings()
    except ConfigError as exc:
        raise UserFacingError(" ".join(str(exc).split())) from None


@contextmanager
def friendly_errors() -> Iterator[None]:
    from deltalake.exceptions import DeltaError

    from flowehr_pipelines.storage_errors import explain_storage_error
    from resources.settings import ConfigError
    from resources.sql_source import SourceUnavailableError

    try:
        yield
    except (ConfigError, SourceUnavailableError, DeltaError, OSError, ValueError) as exc:
        raise UserFacingError(explain_storage_error(str(exc))) from None


class StderrLog:
    """Warnings for the user on stderr (a stale lock being broken)."""

    def warning(self, msg: str) -> None:
        click.echo(f"warning: {msg}", err=True)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned text columns, numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            numeric = cell.replace(",", "").isdigit()
            out.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])
