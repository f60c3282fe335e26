"""``flowehr --help`` and the light commands' help start without the heavy libraries.

Each case runs in its own interpreter (this one has long imported everything) and reads
``sys.modules`` after the command: a behavioural check, not a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

from flowehr_pipelines.cli import SUBCOMMANDS, main

HEAVY = ("dagster", "pyspark", "deltalake", "great_expectations")

_PROBE = """
import json, sys
from flowehr_pipelines.cli import main
try:
    main(sys.argv[1:], prog_name="flowehr")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def _loaded_after(args: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    report: dict[str, object] = json.loads(result.stderr.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["doctor", "--help"],
        ["governance", "project-key", "--help"],
        ["demo-data", "--help"],
        ["run", "--help"],
        ["etl", "head-state", "--help"],
        ["features", "training-set", "--help"],
    ],
)
def test_help_imports_no_dagster_spark_delta_or_gx(args: list[str]) -> None:
    report = _loaded_after(args)
    assert report == {"code": 0, "heavy": []}


def test_loading_the_settings_imports_no_dagster() -> None:
    probe = (
        "import sys; from flowehr_pipelines.config import load_settings; load_settings(); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_lazy_subcommand_resolves_to_its_named_command() -> None:
    ctx = click.Context(main)
    for name in SUBCOMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    assert main.get_command(ctx, "no-such-command") is None
