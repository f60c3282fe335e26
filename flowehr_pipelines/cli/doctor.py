"""``flowehr doctor``: the preflight, one line per check, exit 2 when anything fails."""

from __future__ import annotations

import sys

import click

from flowehr_pipelines.cli.common import EXIT_USAGE


@click.command("doctor")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds allowed for each network connection.",
)
@click.option(
    "--spark", "start_spark", is_flag=True, help="Also start a Spark session and run a job."
)
def doctor(timeout: float, start_spark: bool) -> None:
    """Check everything a run needs and report every problem at once.

    Config validity, each secret (set or not; never shown), each source database with
    its tables and key columns, the lake (written and cleaned up), the Dagster
    instance, Spark or Spark Connect, Databricks, the alert webhook, the clock and the
    schedules' time zone.
    """
    from flowehr_pipelines.doctor import run_doctor

    findings = run_doctor(timeout=timeout, start_spark=start_spark)
    for finding in findings:
        click.echo(finding.line())
    failed = sum(finding.failed for finding in findings)
    if failed:
        click.echo(f"{failed} problem(s) found", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"all {len(findings)} checks passed")
