"""``flowehr metrics serve``: the Prometheus endpoint over the Dagster instance."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from flowehr_pipelines.cli.common import UserFacingError


@click.group("metrics")
def metrics() -> None:
    """Prometheus metrics of runs, assets and checks, read from the Dagster instance."""


@metrics.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True)
@click.option(
    "--dagster-home",
    type=click.Path(file_okay=False, path_type=Path),
    help="The instance directory (default: DAGSTER_HOME, else $FLOWEHR_DATA_DIR/dagster_home).",
)
@click.option(
    "--lookback-hours",
    type=click.FloatRange(min=0.1),
    default=24.0,
    show_default=True,
    help="How far back finished runs and check evaluations count.",
)
def serve(host: str, port: int, dagster_home: Path | None, lookback_hours: float) -> None:
    """Serve /metrics until interrupted; each scrape reads the instance afresh.

    Needs only the instance (DAGSTER_HOME and, for PostgreSQL, its DAGSTER_PG_*
    variables): no pipeline secret, no config file.
    """
    from flowehr_pipelines.metrics.server import build_registry, make_metrics_server

    home = _dagster_home(dagster_home)
    instance = _open_instance(home)
    try:
        registry = build_registry(lambda: instance, lookback=timedelta(hours=lookback_hours))
        try:
            server = make_metrics_server(registry, host=host, port=port)
        except OSError as exc:
            raise UserFacingError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        click.echo(f"serving http://{host}:{server.server_port}/metrics for {home}", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        instance.dispose()


def _dagster_home(explicit: Path | None) -> Path:
    """``--dagster-home``, else ``DAGSTER_HOME``, else the data directory's, as for runs.

    Read from the environment, not the config files: the endpoint needs no pipeline
    setting or secret, so a broken config never blinds monitoring.
    """
    from flowehr_pipelines.config_loading import environment

    if explicit is not None:
        return explicit.resolve()
    env = environment()
    if env.get("DAGSTER_HOME"):
        return Path(env["DAGSTER_HOME"]).resolve()
    data_dir = Path(env.get("FLOWEHR_DATA_DIR") or "./data")
    return (data_dir / "dagster_home").resolve()


def _open_instance(home: Path) -> Any:
    """The instance read by every scrape, opened once (a PostgreSQL pool is reused)."""
    import dagster as dg

    if not (home / "dagster.yaml").exists() and not (home / "history").exists():
        raise UserFacingError(f"no Dagster instance at {home} (set DAGSTER_HOME or --dagster-home)")
    try:
        return dg.DagsterInstance.from_config(str(home))
    except Exception as exc:  # any instance-config problem: one line, no traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserFacingError(f"cannot open the Dagster instance at {home}: {first}") from None
