"""``flowehr spark-server``: one Spark Connect server per machine, for every run to share."""

from __future__ import annotations

import click

from flowehr_pipelines.cli.common import UserFacingError, load_cli_settings


@click.group("spark-server")
def spark_server() -> None:
    """Start, inspect or stop this machine's Spark Connect server (127.0.0.1 only).

    Runs use it when FLOWEHR_SPARK_REMOTE (config spark.remote) names its URL, so no
    run starts a JVM of its own.
    """


@spark_server.command("start")
@click.option("--port", type=click.IntRange(1024, 65535), default=15002, show_default=True)
@click.option(
    "--master",
    default="local[2]",
    show_default=True,
    help="Where its executors run: local[N] or a standalone cluster's spark://host:port.",
)
@click.option("--memory", default="2g", show_default=True, help="The server's JVM heap.")
@click.option("--timeout", type=click.FloatRange(min=1), default=180.0, show_default=True)
def start(port: int, master: str, memory: str, timeout: float) -> None:
    """Start the server, or say where the running one is."""
    from flowehr_pipelines.spark_service import SparkServiceError
    from flowehr_pipelines.spark_service import start as start_server

    data_dir = load_cli_settings().data_dir
    try:
        state, new = start_server(
            data_dir, port=port, master=master, memory=memory, timeout=timeout
        )
    except SparkServiceError as exc:
        raise UserFacingError(str(exc)) from None
    verb = "started" if new else "already running"
    click.echo(f"Spark Connect {verb}: {state.url} (pid {state.pid}, log {state.log})")
    click.echo(f"point runs at it: export FLOWEHR_SPARK_REMOTE={state.url}")


@spark_server.command("status")
def status() -> None:
    """Whether the server runs; exit 1 when it does not."""
    from flowehr_pipelines.spark_service import read_state, running

    data_dir = load_cli_settings().data_dir
    state = running(data_dir)
    if state is None:
        stale = read_state(data_dir)
        note = f" (pid {stale.pid} recorded, not answering)" if stale else ""
        click.echo(f"no Spark Connect server running{note}")
        raise SystemExit(1)
    click.echo(f"Spark Connect running: {state.url} (pid {state.pid})")


@spark_server.command("stop")
def stop() -> None:
    """Stop the server and every process it started."""
    from flowehr_pipelines.spark_service import stop as stop_server

    pid = stop_server(load_cli_settings().data_dir)
    click.echo("no Spark Connect server was recorded" if pid is None else f"stopped pid {pid}")
