"""``flowehr governance``: hand a research project its key (pipeline identity only).

The key is derived from the master key with HKDF-SHA256 and written to a new file
readable by its owner only, never printed: the operator moves it into the project's
secret store as ``FLOWEHR_PROJECT_KEY`` (with ``FLOWEHR_PROJECT_ID``).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from flowehr_pipelines.cli.common import UserFacingError, load_cli_settings


@click.group("governance")
def governance() -> None:
    """Information-governance tooling (docs/GOVERNANCE.md)."""


@governance.command("project-key")
@click.option("--project", "project_id", required=True, help="A project in governance.projects.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New file to write the key to (mode 0600); never overwritten.",
)
def project_key(project_id: str, out_path: Path) -> None:
    """Write a project's derived key (hex) for its readers' FLOWEHR_PROJECT_KEY."""
    from flowehr_pipelines.researcher.project import ProjectKey

    settings = load_cli_settings()
    try:
        key = ProjectKey.derive(settings, project_id).key
    except KeyError as exc:
        raise UserFacingError(str(exc.args[0])) from None
    except ValueError as exc:
        raise UserFacingError(str(exc)) from None
    try:
        descriptor = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserFacingError(f"{out_path} exists: choose a new file") from None
    except OSError as exc:
        raise UserFacingError(f"cannot write {out_path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
    click.echo(
        f"wrote the key of project '{project_id}' to {out_path}; give it to the project's "
        "readers as FLOWEHR_PROJECT_KEY with FLOWEHR_PROJECT_ID, then delete the file"
    )
