"""``flowehr features``: the researcher API on the command line.

``list`` and ``describe`` print the data dictionary; ``training-set`` writes a
point-in-time-correct training set for a spine file; ``export`` upserts a feature table
into a SQL database; ``head`` prints the first rows of any published table. All of them
use the researcher's own reader (``FeatureStore.for_researcher``): the lake root and read
credentials from the environment, never the pipeline's config, secret key or source
database, and only published tables (see ``flowehr_pipelines.researcher``). Problems
print one line and exit 2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

EXIT_USAGE = 2
# The --features example of the help text; a test resolves it against the dictionary.
FEATURES_EXAMPLE = "news2,lab_summaries.lab_crp_*"


class _Problem(click.ClickException):
    exit_code = EXIT_USAGE


def _first_arg(exc: Exception) -> str:
    """A KeyError's message without the quotes str() adds (other errors as they are)."""
    return str(exc.args[0]) if exc.args else str(exc)


def _end_of_day(day: datetime) -> datetime:
    """The end of a UTC day: what ``--as-of-date`` reads tables as of."""
    return datetime.combine(day.date() + timedelta(days=1), time(), UTC)


@contextmanager
def _store() -> Iterator[Any]:
    """The researcher's read-only API, with one-line errors."""
    from deltalake.exceptions import DeltaError

    from flowehr_pipelines.researcher.store import FeatureStore
    from resources.settings import ConfigError

    try:
        yield FeatureStore.for_researcher()
    except KeyError as exc:
        raise _Problem(_first_arg(exc)) from None
    except (
        ConfigError,
        PermissionError,
        FileNotFoundError,
        ImportError,
        ValueError,
        TypeError,
        DeltaError,
        OSError,
    ) as exc:
        raise _Problem(str(exc).strip().splitlines()[0]) from None


def _table(header: tuple[str, ...], rows: Sequence[Sequence[str]]) -> str:
    from flowehr_pipelines.cli.common import format_table

    return format_table(header, rows)


@click.group("features")
def features() -> None:
    """Feature store for researchers: data dictionary, training sets, SQL export."""


@features.command("list")
def list_tables() -> None:
    """List the feature tables with their Delta version, rows and description."""
    with _store() as store:
        tables = store.list_tables()
    rows = [
        (
            t.name,
            "-" if t.delta_version is None else str(t.delta_version),
            "-" if t.rows is None else f"{t.rows:,}",
            ",".join(t.feature_versions) or "-",
            t.description,
        )
        for t in tables
    ]
    click.echo(_table(("table", "version", "rows", "features", "description"), rows))


@features.command("describe")
@click.argument("table")
def describe(table: str) -> None:
    """Print a feature table's data dictionary."""
    with _store() as store:
        info = store.describe(table)
    click.echo(f"{info.path}: {info.description}")
    click.echo(f"horizon: {info.horizon}")
    if info.delta_version is None:
        click.echo("not published yet: run `flowehr run`")
    else:
        click.echo(
            f"Delta version {info.delta_version}, {info.rows:,} rows, feature version(s) "
            f"{', '.join(info.feature_versions) or '-'}"
        )
    click.echo("")
    rows = [(c.name, c.type, c.role, c.description) for c in info.columns]
    click.echo(_table(("column", "type", "role", "description"), rows))


@features.command("training-set")
@click.option(
    "--spine",
    "spine_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV or Parquet file with the entity key and event time (other columns are kept).",
)
@click.option(
    "--cohort",
    "cohort_source",
    help="Build the spine from a cohort: a definition file or a named one (instead of --spine).",
)
@click.option(
    "--features",
    "feature_list",
    help=f"Comma-separated: table, table.column or table.pattern* (e.g. {FEATURES_EXAMPLE}).",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file: .parquet or .csv. Its manifest is written beside it.",
)
@click.option("--entity-key", default="visit_id", show_default=True, help="visit_id or person_key.")
@click.option("--event-time", default="event_time", show_default=True, help="Spine time column.")
@click.option(
    "--version",
    "versions",
    multiple=True,
    help="TABLE=N: read that table at Delta version N (repeatable).",
)
@click.option(
    "--as-of-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Read each table as it was at the end of this UTC day (--version still wins).",
)
@click.option(
    "--event-time-only",
    is_flag=True,
    help="Join on event time alone: values reported after the event may appear "
    "(retrospective studies only; the default also joins on known-at time).",
)
@click.option(
    "--manifest",
    "manifest_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rebuild the training set this manifest describes and check it is the same bytes.",
)
def training_set(
    spine_path: Path | None,
    cohort_source: str | None,
    feature_list: str | None,
    out_path: Path | None,
    entity_key: str,
    event_time: str,
    versions: tuple[str, ...],
    as_of_date: datetime | None,
    event_time_only: bool,
    manifest_file: Path | None,
) -> None:
    """Write point-in-time-correct features: the latest horizon at or before each event
    time, as known at that time.

    Every training set gets a manifest beside it (``<out>.manifest.json``): the spine's
    hash, the features, each table's Delta version and the output's hash. ``--manifest``
    rebuilds from one and fails unless the result is byte for byte the same.
    """
    if manifest_file is not None:
        if spine_path or cohort_source or feature_list or versions or as_of_date or event_time_only:
            raise _Problem("--manifest rebuilds from the manifest alone: give at most --out")
        _rebuild(manifest_file, out_path)
        return
    if (spine_path is None) == (cohort_source is None) or not feature_list or out_path is None:
        raise _Problem(
            "training-set needs one of --spine or --cohort, --features and --out (or --manifest)"
        )
    pinned: dict[str, int] = {}
    for item in versions:
        table, _, number = item.partition("=")
        if not number.isdigit():
            raise _Problem(f"--version expects TABLE=N, not '{item}'")
        pinned[table] = int(number)
    chosen = [f for f in (part.strip() for part in feature_list.split(",")) if f]
    moment = None
    if as_of_date is not None:
        moment = _end_of_day(as_of_date)
    from flowehr_pipelines.researcher.manifest import (
        TrainingSetManifest,
        manifest_path,
        sha256_of,
    )
    from transforms.cohorts import COHORT_INPUTS

    with _store() as store:
        tables = store.tables_for(chosen)
        definition = _cohort_definition(cohort_source) if cohort_source else None
        cohort_tables = list(COHORT_INPUTS) if definition else []
        read_at = {
            **store.versions_as_of(list(dict.fromkeys([*tables, *cohort_tables])), moment),
            **pinned,
        }
        spine: Any = spine_path
        if definition is not None:
            spine = store.cohort(definition, versions=read_at)
        result = store.training_set(
            spine,
            chosen,
            entity_key=entity_key,
            event_time=event_time,
            versions=read_at,
            known_at=not event_time_only,
            output="arrow",
        )
        _write_output(result, out_path)
    manifest = TrainingSetManifest(
        spine_file=str(spine_path.resolve()) if spine_path else "",
        spine_sha256=sha256_of(spine_path) if spine_path else "",
        features=chosen,
        entity_key=entity_key,
        event_time=event_time,
        versions={t: read_at[t] for t in dict.fromkeys([*tables, *cohort_tables])},
        output_file=str(out_path.resolve()),
        output_sha256=sha256_of(out_path),
        known_at_join=not event_time_only,
        cohort=definition.record() if definition else None,
        codelists=_codelist_records(chosen, definition),
    )
    manifest.write(manifest_path(out_path))
    matched = {
        column.removesuffix("__horizon_datetime"): result.num_rows - result[column].null_count
        for column in result.column_names
        if column.endswith("__horizon_datetime")
    }
    click.echo(f"{out_path}: {result.num_rows:,} rows, {result.num_columns} columns")
    for table, count in matched.items():
        click.echo(f"  {table}: {count:,} rows with a horizon at or before the event")
    shown = ", ".join(f"{t} v{v}" for t, v in manifest.versions.items())
    click.echo(f"  manifest {manifest_path(out_path)} ({shown})")


def _cohort_definition(source: str | dict[str, Any]) -> Any:
    """A cohort definition from a file, a name or a manifest's record, with one-line errors."""
    from transforms.cohorts import load_cohort, parse_cohort

    try:
        return parse_cohort(source) if isinstance(source, dict) else load_cohort(source)
    except (FileNotFoundError, ValueError) as exc:
        raise _Problem(str(exc)) from None


def _codelist_records(features: list[str], definition: Any) -> list[dict[str, str]]:
    """Name, version, system and SHA-256 of every code list the training set used."""
    from flowehr_pipelines.researcher.store import codelist_items
    from transforms.codelists import load_codelist

    refs = [
        *codelist_items(features),
        *(definition.include + definition.exclude if definition else ()),
    ]
    try:
        return [load_codelist(ref).record() for ref in dict.fromkeys(refs)]
    except (KeyError, ValueError) as exc:
        raise _Problem(_first_arg(exc)) from None


def _check_codelists(records: list[dict[str, str]]) -> None:
    """Refuse a rebuild when a recorded code list is gone or its file changed."""
    from transforms.codelists import load_codelist

    for record in records:
        reference = f"{record['name']}@{record['version']}"
        try:
            current = load_codelist(reference).sha256
        except (KeyError, ValueError) as exc:
            raise _Problem(_first_arg(exc)) from None
        if current != record["sha256"]:
            raise _Problem(f"code list {reference} has changed since the manifest was written")


def _write_output(result: Any, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix.lower() == ".csv":
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(result, out_path)
    else:
        import pyarrow.parquet as pq

        pq.write_table(result, out_path)


def _rebuild(manifest_file: Path, out_path: Path | None) -> None:
    """Rebuild a manifest's training set beside its output and compare the bytes."""
    import os
    import tempfile

    from flowehr_pipelines.researcher.manifest import TrainingSetManifest, sha256_of

    try:
        manifest = TrainingSetManifest.read(manifest_file)
    except ValueError as exc:
        raise _Problem(str(exc)) from None
    _check_codelists(manifest.codelists)
    spine: Any = None
    if manifest.cohort is None:
        spine = Path(manifest.spine_file)
        if not spine.exists():
            raise _Problem(f"the manifest's spine {spine} does not exist")
        if sha256_of(spine) != manifest.spine_sha256:
            raise _Problem(f"the spine {spine} has changed since the manifest was written")
    target = out_path or Path(manifest.output_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch_name = tempfile.mkstemp(
        prefix=".rebuild-", suffix=target.suffix, dir=target.parent
    )
    os.close(handle)
    scratch = Path(scratch_name)
    try:
        with _store() as store:
            if manifest.cohort is not None:
                definition = _cohort_definition(manifest.cohort)
                spine = store.cohort(definition, versions=manifest.versions)
            result = store.training_set(
                spine,
                manifest.features,
                entity_key=manifest.entity_key,
                event_time=manifest.event_time,
                versions=manifest.versions,
                known_at=manifest.known_at_join,
                output="arrow",
            )
            _write_output(result, scratch)
        rebuilt = sha256_of(scratch)
        if rebuilt != manifest.output_sha256:
            raise _Problem(
                f"the rebuilt training set differs from the manifest's (sha256 {rebuilt[:12]}, "
                f"manifest {manifest.output_sha256[:12]})"
            )
        if out_path is not None or not target.exists():
            scratch.replace(target)
    finally:
        scratch.unlink(missing_ok=True)
    shown = ", ".join(f"{t} v{v}" for t, v in manifest.versions.items())
    click.echo(f"{target}: reproduced byte for byte (sha256 {rebuilt[:12]}; {shown})")


@features.command("cohort")
@click.argument("definition")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Spine file to write: .parquet or .csv (visit_id, person_key, event_time ...).",
)
@click.option(
    "--as-of-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Read the input tables as they were at the end of this UTC day.",
)
def cohort(definition: str, out_path: Path, as_of_date: datetime | None) -> None:
    """Write a cohort's visits as a spine (DEFINITION: a YAML file or a named definition)."""
    from transforms.cohorts import COHORT_INPUTS

    chosen = _cohort_definition(definition)
    moment = None
    if as_of_date is not None:
        moment = _end_of_day(as_of_date)
    with _store() as store:
        versions = store.versions_as_of(list(COHORT_INPUTS), moment)
        rows = store.cohort(chosen, versions=versions)
        _write_output(rows, out_path)
        policy = store.disclosure_policy(
            [f"gold/features/cohorts/{chosen.name}", *(f"gold/features/{t}" for t in versions)]
        )
    people = len(set(rows.column("person_key").to_pylist()))
    lists = ", ".join(f"{r['name']}@{r['version']}" for r in _codelist_records([], chosen))
    click.echo(
        f"{out_path}: cohort {chosen.name}, {policy.shown(rows.num_rows)} visits of "
        f"{policy.shown(people)} people (counts under disclosure control: {policy.rule})"
    )
    click.echo(
        f"  code lists {lists or '-'}; read at "
        + ", ".join(f"{t} v{v}" for t, v in versions.items())
    )


@features.command("codelists")
def codelists() -> None:
    """List the code lists: system, pinned version, codes and SHA-256."""
    from transforms.codelists import available, load_codelist

    rows = []
    for name, entry in sorted(available().items()):
        try:
            loaded = load_codelist(name)
        except (KeyError, ValueError) as exc:
            raise _Problem(_first_arg(exc)) from None
        versions = ",".join(str(v) for v in entry["versions"])
        rows.append(
            (
                name,
                loaded.system,
                loaded.version,
                versions,
                str(len(loaded.codes)),
                loaded.sha256[:12],
                loaded.description,
            )
        )
    click.echo(
        _table(
            ("code list", "system", "pinned", "versions", "codes", "sha256", "description"), rows
        )
    )


@features.command("head")
@click.argument("path")
@click.option("--rows", default=10, show_default=True, type=click.IntRange(min=1))
def head(path: str, rows: int) -> None:
    """Print the first rows of a published table, e.g. reporting/request_item_status."""
    with _store() as store:
        table = store.open_table(path).slice(0, rows)
    header = tuple(table.column_names)
    body = [tuple("" if v is None else str(v) for v in row.values()) for row in table.to_pylist()]
    click.echo(_table(header, body) if body else f"{path}: no rows")


@features.command("export")
@click.argument("table")
@click.option("--url", required=True, help="SQLAlchemy URL of the SQL feature store.")
@click.option("--table-name", help="Target SQL table (default features_<TABLE>).")
@click.option("--version", type=click.IntRange(min=0), help="Export an earlier Delta version.")
def export(table: str, url: str, table_name: str | None, version: int | None) -> None:
    """Upsert a feature table into a SQL database (SQLite, PostgreSQL, SQL Server)."""
    from sqlalchemy.exc import SQLAlchemyError

    with _store() as store:
        try:
            written = store.export_to_sql(table, url, table_name=table_name, version=version)
        except SQLAlchemyError as exc:
            raise _Problem(str(exc).strip().splitlines()[0]) from None
    click.echo(f"{table}: {written:,} rows upserted into {table_name or f'features_{table}'}")
