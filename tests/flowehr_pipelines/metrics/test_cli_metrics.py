"""``flowehr metrics serve`` refuses in one line where there is nothing to serve."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from flowehr_pipelines.cli import main


def test_no_instance_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["metrics", "serve", "--dagster-home", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: no Dagster instance at {tmp_path} (set DAGSTER_HOME or --dagster-home)"
    ]


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["metrics", "serve", "--port", str(port), "--dagster-home", str(tmp_path)]
        )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
