"""``flowehr demo-data``: the embedded EHR source database and CDC landing files."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path

import click

from flowehr_pipelines.cli.common import UserFacingError, friendly_errors, load_cli_settings


@click.command("demo-data")
@click.option("--patients", type=click.IntRange(min=1), help="Patients in the EHR source.")
@click.option("--days", type=click.IntRange(min=1), help="Days of history to generate.")
@click.option("--events-per-day", type=click.IntRange(min=1), help="CDC records per day.")
@click.option("--seed", type=int, help="Random seed: same seed, same data.")
@click.option(
    "--start-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First day (default: so that the period ends today).",
)
@click.option("--if-missing", is_flag=True, help="Do nothing when the source database exists.")
@click.option(
    "--compress", is_flag=True, help="Write the CDC landing files gzip-compressed (*.jsonl.gz)."
)
def demo_data(
    patients: int | None,
    days: int | None,
    events_per_day: int | None,
    seed: int | None,
    start_date: datetime | None,
    if_missing: bool,
    compress: bool,
) -> None:
    """Write the embedded EHR source database and CDC landing files."""
    from flowehr_pipelines.synthetic import write_cdc_landing, write_ehr_source

    settings = load_cli_settings()
    defaults = settings.demo_data
    connection = settings.data_source_connections[0]
    url = settings.source_url(connection)
    if not url.startswith("sqlite:///"):
        raise UserFacingError(f"demo data goes to an embedded SQLite source, not {connection.name}")
    if settings.lake_is_s3:
        raise UserFacingError("demo data writes landing files to a local lake only")
    db_path = Path(url.removeprefix("sqlite:///"))
    if if_missing and db_path.exists():
        click.echo(f"demo data present: {db_path}")
        return
    n_days = days or defaults.days
    first = start_date.date() if start_date else date.today() - timedelta(days=n_days - 1)
    the_seed = defaults.seed if seed is None else seed
    n_patients = patients or defaults.patients
    period = f"{first} to {first + timedelta(days=n_days - 1)}, seed {the_seed}"
    click.echo(f"generating {period}: EHR source for {n_patients:,} patients ...")
    with friendly_errors():
        db_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        ehr = write_ehr_source(
            db_path, patients=n_patients, days=n_days, start_date=first, seed=the_seed
        )
        ehr_seconds = time.perf_counter() - started
        rows = ehr.patients + ehr.visits + ehr.observations + ehr.lab_results + ehr.diagnoses
        click.echo(
            f"EHR source {db_path}: {ehr.patients:,} patients, {ehr.visits:,} visits, "
            f"{ehr.observations:,} observations, {ehr.lab_results:,} lab results, "
            f"{ehr.diagnoses:,} diagnoses ({_rate(rows, ehr_seconds)})"
        )
        click.echo("generating CDC landing files ...")
        started = time.perf_counter()
        cdc = write_cdc_landing(
            Path(settings.landing_root),
            days=n_days,
            events_per_day=events_per_day or defaults.events_per_day,
            start_date=first,
            seed=the_seed,
            compress=compress,
        )
        cdc_seconds = time.perf_counter() - started
    click.echo(
        f"CDC landing {settings.landing_root}: {cdc.records:,} records in {len(cdc.files)} files "
        f"({cdc.duplicates:,} re-delivered, {sum(cdc.malformed.values()):,} malformed; "
        f"{_rate(cdc.records, cdc_seconds)})"
    )


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / max(seconds, 1e-9):,.0f} rows/s in {seconds:.1f}s"
