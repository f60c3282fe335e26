"""The ``flowehr`` command: help everywhere, one-line errors, aligned listings."""

from __future__ import annotations

import pyarrow as pa
import pytest
from click.testing import CliRunner

from flowehr_pipelines.cli import main
from flowehr_pipelines.cli.common import format_table
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["demo-data"],
        ["run"],
        ["etl"],
        ["etl", "head-state"],
        ["etl", "clear-state"],
        ["tables"],
        ["features"],
    ],
)
def test_cli_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_cli_tables_lists_published_tables_with_version_and_rows() -> None:
    delta = build_delta_store(load_settings())
    delta.overwrite(("reporting", "request_item_status"), pa.table({"requestitemid": ["a", "b"]}))
    delta.overwrite(("bronze", "transaction_history"), pa.table({"x": [1]}))
    result = CliRunner().invoke(main, ["tables"])
    assert result.exit_code == 0, result.output
    assert "reporting/request_item_status" in result.output
    assert "bronze" not in result.output, "restricted zones are never listed"
    row = next(line for line in result.output.splitlines() if "request_item_status" in line)
    assert row.split()[1:] == ["0", "2"]


def test_cli_config_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FLOWEHR_CONFIG_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["tables"])
    assert result.exit_code == 2
    assert "config.yaml: not found" in result.output
    assert "Traceback" not in result.output


def test_cli_clear_state_refuses_without_yes() -> None:
    result = CliRunner().invoke(main, ["etl", "clear-state"])
    assert result.exit_code == 2
    assert "--yes" in result.output


def test_format_table_aligns_text_left_and_numbers_right() -> None:
    text = format_table(("table", "rows"), [("a", "1,000"), ("long_name", "7")])
    lines = text.splitlines()
    assert lines[2] == "a          1,000"
    assert lines[3] == "long_name      7"
