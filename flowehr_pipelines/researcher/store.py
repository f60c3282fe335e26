"""Researcher access to the feature store: catalogue, point-in-time training sets, export.

Design:

* **Read-only, published zones only.** Every read goes through :class:`PublishedLake`,
  which accepts tables under ``gold/features`` and ``reporting`` and raises
  ``PermissionError`` for anything else (landing, bronze, silver, internal, and paths
  that climb out of a published zone with ``..``). The API has no method that writes.
* **Its own identity.** :meth:`FeatureStore.for_researcher` needs only the lake root
  and the storage's read credentials (``ReaderSettings``, from the environment): no
  config files and their ``${...}`` tokens, no pseudonymisation key, no source database.
  On S3 the credentials are a read-only identity limited to the published prefixes
  (docs/DEPLOYMENT.md), so the storage refuses what this guard refuses.
* **No Spark.** Tables are read with delta-rs as Arrow and joined with DuckDB, so a
  researcher's laptop or notebook needs neither a JVM nor a cluster. (The data
  dictionary lives beside the PySpark transforms; importing it starts nothing.)
* **Point in time correct, on both times.** Feature rows are bitemporal: a horizon
  (event time) as known at ``known_at``. :meth:`FeatureStore.training_set` joins each
  spine row to the latest horizon of the same entity at or before its event time,
  in its latest revision known by then, so neither a later horizon nor a result
  reported after the event can appear (``known_at=False`` drops the second rule, as
  an explicit choice). The horizon and revision used are returned beside the
  features so the guarantee can be audited.
* **Versioned.** Any table can be read at an earlier Delta version (time travel), and
  every row carries the ``feature_version`` it was computed with.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from flowehr_pipelines.config import ReaderSettings, Settings, load_settings
from flowehr_pipelines.researcher.project import ProjectKey
from flowehr_pipelines.researcher.reader import (
    FEATURE_ZONE,
    ColumnInfo,
    FeatureTableInfo,
    PublishedLake,
    published_path,
)
from flowehr_pipelines.researcher.spine import Output, convert, load_spine, normalise_spine
from flowehr_pipelines.researcher.sql_export import sql_row, sql_type, upsert_rows
from resources.delta.store import DeltaTableStore
from transforms.codelists import load_codelist, matches_sql
from transforms.cohorts import COHORT_INPUTS, CohortDefinition
from transforms.disclosure import DisclosurePolicy
from transforms.features.dictionary import FeatureTableSpec
from transforms.features.pipeline import FEATURE_TABLES

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

ENTITY_KEYS: tuple[str, ...] = ("visit_id", "person_key")


HOURS_SINCE_SUFFIX = "_hours_since"

CODELIST_PREFIX = "codelist:"
DIAGNOSES_TABLE = "diagnoses"


def codelist_items(features: Sequence[str]) -> list[str]:
    """The code lists named by ``codelist:<name>[@version]`` items, in order."""
    return [
        item.strip().removeprefix(CODELIST_PREFIX)
        for item in features
        if item.strip().startswith(CODELIST_PREFIX)
    ]


class FeatureStore:
    """Read-only researcher API over the published zones of one lake."""

    def __init__(self, delta: DeltaTableStore, project: ProjectKey | None = None) -> None:
        self._lake = PublishedLake(delta, None if project is None else project.key)
        self.project_id = None if project is None else project.project_id

    @classmethod
    def for_researcher(cls, env: Mapping[str, str] | None = None) -> FeatureStore:
        """The researcher's reader: lake root and read credentials only (no config, no
        master key); with ``FLOWEHR_PROJECT_ID`` and ``FLOWEHR_PROJECT_KEY``, the project's
        pseudonyms in place of the published ones."""
        from flowehr_pipelines.deployment import build_reader_store

        return cls(build_reader_store(ReaderSettings.from_env(env)), ProjectKey.from_env(env))

    @classmethod
    def for_project(cls, project_id: str, settings: Settings | None = None) -> FeatureStore:
        """A project's reader built by the pipeline identity: the project key is derived
        from the master key here, and only the derived key goes into the reader."""
        from flowehr_pipelines.deployment import build_delta_store

        settings = settings or load_settings()
        return cls(build_delta_store(settings), ProjectKey.derive(settings, project_id))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> FeatureStore:
        """The store of the configured environment (``FLOWEHR_ENV``), for engineers."""
        from flowehr_pipelines.deployment import build_delta_store

        return cls(build_delta_store(settings or load_settings()))

    # -- reading ---------------------------------------------------------------------

    def disclosure_policy(self, paths: Sequence[str | Sequence[str]] = ()) -> DisclosurePolicy:
        """The disclosure rule recorded on the first of ``paths`` that has one."""
        return self._lake.disclosure_policy(paths)

    def open_table(
        self,
        path: str | Sequence[str],
        *,
        columns: Sequence[str] | None = None,
        version: int | None = None,
        filters: Any = None,
    ) -> pa.Table:
        """Read a published table as Arrow (optionally at a Delta version).

        Raises:
            PermissionError: when the path is outside the published zones.
            FileNotFoundError: when nothing has been published there yet.
        """
        parts = published_path(path)
        if not self._lake.exists(parts):
            raise FileNotFoundError(f"no table at '{'/'.join(parts)}' yet: run the pipeline first")
        if version is not None:
            self._check_version(parts, version)
        return self._lake.read(
            parts, columns=list(columns) if columns else None, version=version, filters=filters
        )

    def versions_as_of(
        self, tables: Sequence[str], moment: datetime | None = None
    ) -> dict[str, int]:
        """Each feature table's Delta version: the newest, or the newest committed by ``moment``.

        Raises:
            FileNotFoundError: a table has not been published yet.
            ValueError: a table had no version by ``moment`` (one line, with its first).
        """
        versions: dict[str, int] = {}
        for name in tables:
            parts = (*FEATURE_ZONE, name)
            if not self._lake.exists(parts):
                raise FileNotFoundError(
                    f"no table at '{'/'.join(parts)}' yet: run the pipeline first"
                )
            commits = sorted(
                (int(h["version"]), int(h["timestamp"])) for h in self._lake.table(parts).history()
            )
            if moment is None:
                versions[name] = commits[-1][0]
                continue
            limit = moment.timestamp() * 1000
            earlier = [version for version, at in commits if at <= limit]
            if not earlier:
                first = datetime.fromtimestamp(commits[0][1] / 1000, UTC).isoformat(
                    timespec="seconds"
                )
                raise ValueError(
                    f"{'/'.join(parts)} had no version by {moment.isoformat()}: its first, "
                    f"version {commits[0][0]}, is of {first}"
                )
            versions[name] = earlier[-1]
        return versions

    def _check_version(self, parts: tuple[str, ...], version: int) -> None:
        """Refuse a version the table does not have, naming those it has.

        Raises:
            ValueError: one line, the table and its versions (not the engine's error).
        """
        name = "/".join(parts)
        history = sorted(int(h["version"]) for h in self._lake.table(parts).history())
        if version in history:
            from deltalake.exceptions import DeltaError

            try:
                self._lake.table(parts, version=version)
                return
            except (DeltaError, OSError):  # its log or checkpoint is gone
                pass
        shown = f"{history[0]} to {history[-1]}" if history else "none"
        raise ValueError(
            f"{name} has no readable version {version}: its versions are {shown}"
            " (older ones may have been removed by housekeeping's VACUUM)"
        )

    def read(
        self,
        name: str,
        *,
        columns: Sequence[str] | None = None,
        version: int | None = None,
        output: Output = "arrow",
    ) -> Any:
        """One feature table, whole or some columns, as Arrow, pandas or Polars."""
        spec = self.spec(name)
        unknown = sorted(set(columns or ()) - set(spec.column_names))
        if unknown:
            raise KeyError(f"{name} has no column(s) {', '.join(unknown)}")
        return convert(
            self.open_table((*FEATURE_ZONE, name), columns=columns, version=version), output
        )

    # -- catalogue -------------------------------------------------------------------

    def spec(self, name: str) -> FeatureTableSpec:
        try:
            return FEATURE_TABLES[name]
        except KeyError:
            known = ", ".join(sorted(FEATURE_TABLES))
            raise KeyError(f"no feature table '{name}' (known: {known})") from None

    def describe(self, name: str) -> FeatureTableInfo:
        """A feature table's data dictionary, Delta version, row count and feature versions."""
        spec = self.spec(name)
        path = (*FEATURE_ZONE, name)
        version = rows = None
        feature_versions: tuple[str, ...] = ()
        if self._lake.exists(path):
            dt = self._lake.table(path)
            version, rows = dt.version(), dt.count()
            stored = self._lake.read(path, columns=["feature_version"])
            feature_versions = tuple(sorted(pc.unique(stored["feature_version"]).to_pylist()))
        return FeatureTableInfo(
            name=spec.name,
            description=spec.description,
            horizon=spec.horizon,
            columns=tuple(ColumnInfo(c.name, c.type, c.role, c.description) for c in spec.columns),
            delta_version=version,
            rows=rows,
            feature_versions=feature_versions,
        )

    def list_tables(self) -> list[FeatureTableInfo]:
        """Every feature table with its data dictionary (published or not yet)."""
        return [self.describe(name) for name in FEATURE_TABLES]

    # -- training sets ---------------------------------------------------------------

    def resolve_features(self, features: Sequence[str]) -> dict[str, list[str]]:
        """``table``, ``table.column`` or ``table.pattern*`` to columns per table.

        A bare table name selects its feature and label columns (not keys or metadata).
        """
        chosen: dict[str, list[str]] = {}
        for item in features:
            if item.strip().startswith(CODELIST_PREFIX):
                continue
            table, _, pattern = item.strip().partition(".")
            spec = self.spec(table)
            if spec.kind == "events":
                raise KeyError(
                    f"{table} is a list of coded events, not joined by horizon: use "
                    f"'{CODELIST_PREFIX}<name>' features or a cohort"
                )
            selectable = [c.name for c in spec.columns if c.role in ("feature", "label")]
            if not pattern:
                matched = selectable
            else:
                matched = [c for c in selectable if fnmatch.fnmatchcase(c, pattern)]
                if not matched:
                    raise KeyError(f"{table} has no feature column matching '{pattern}'")
            columns = chosen.setdefault(table, [])
            columns.extend(c for c in matched if c not in columns)
        if not chosen and not codelist_items(features):
            raise ValueError("choose at least one feature table or column")
        return chosen

    def tables_for(self, features: Sequence[str]) -> list[str]:
        """Every feature table a selection reads (``diagnoses`` for code-list items)."""
        tables = list(self.resolve_features(features))
        if codelist_items(features):
            tables.append(DIAGNOSES_TABLE)
        return tables

    # -- cohorts ---------------------------------------------------------------------

    def cohort(
        self,
        definition: CohortDefinition | str | Path,
        *,
        versions: Mapping[str, int] | None = None,
        output: Output = "arrow",
    ) -> Any:
        """A cohort's visits (``visit_id``, ``person_key``, ``event_time`` ...) as a spine.

        Args:
            definition: a :class:`CohortDefinition`, a YAML file or a named definition.
            versions: Delta version per input table (for a reproducible read).
            output: ``arrow``, ``pandas`` or ``polars``.
        """
        from transforms.cohorts import build_cohort, load_cohort

        chosen = definition if isinstance(definition, CohortDefinition) else load_cohort(definition)
        tables = {
            name: self.open_table((*FEATURE_ZONE, name), version=(versions or {}).get(name))
            for name in COHORT_INPUTS
        }
        return convert(build_cohort(chosen, chosen.codelists(), tables), output)

    def training_set(
        self,
        spine: Any,
        features: Sequence[str],
        *,
        entity_key: str = "visit_id",
        event_time: str = "event_time",
        versions: Mapping[str, int] | None = None,
        known_at: bool = True,
        output: Output = "pandas",
    ) -> Any:
        """Point-in-time-correct features for each row of a spine.

        Args:
            spine: rows of ``entity_key`` and ``event_time`` (plus anything else, e.g. a
                label), as pandas, Polars, Arrow, or a CSV/Parquet path. Naive event
                times are taken as UTC.
            features: ``table``, ``table.column`` or ``table.glob*`` items.
            entity_key: ``visit_id`` or ``person_key``.
            event_time: the spine's time column.
            versions: Delta version per table, for a reproducible (time-travelled) read.
            known_at: join on known-at time as well as event time (the default): each
                row gets the latest horizon at or before its event time *as known at*
                that time. ``False`` joins on event time only and takes the horizon's
                final values, which may include facts reported after the event (for
                retrospective questions, never for a model that will predict).
            output: ``pandas``, ``polars`` or ``arrow``.

        Returns:
            The spine's rows in their order and columns, then each chosen feature, then
            ``<table>__horizon_datetime`` and ``<table>__known_at``: the horizon and
            revision whose values were used (null when the entity had no horizon at or
            before the event). ``*_hours_since``
            features count to the row's event time, not to that horizon; window
            features (``*_4h``, ``*_24h``) are the horizon's windows. Feature names that
            clash between tables are prefixed ``<table>__``.

        Raises:
            KeyError: unknown table or column; ValueError: a spine without the columns.
        """
        import duckdb

        if entity_key not in ENTITY_KEYS:
            raise ValueError(f"entity_key must be one of {', '.join(ENTITY_KEYS)}")
        chosen = self.resolve_features(features)
        codelists = {ref: load_codelist(ref) for ref in codelist_items(features)}
        base = normalise_spine(load_spine(spine), entity_key=entity_key, event_time=event_time)
        row_id = "__spine_row"
        spine_table = base.append_column(row_id, pa.array(range(base.num_rows), pa.int64()))
        seen: dict[str, int] = {}
        for columns in chosen.values():
            for column in columns:
                seen[column] = seen.get(column, 0) + 1
        taken = set(spine_table.column_names)

        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.register("spine", spine_table)
            select = [f"s.{_q(c)}" for c in base.column_names]
            picks, joins = [], []
            key, moment = _q(entity_key), f"s.{_q(event_time)}"
            for i, (table, columns) in enumerate(chosen.items()):
                version = (versions or {}).get(table)
                data = self.open_table(
                    (*FEATURE_ZONE, table),
                    columns=[entity_key, "horizon_datetime", "known_at", *columns],
                    version=version,
                )
                alias, pick = f"f{i}", f"p{i}"
                con.register(alias, data)
                for column in columns:
                    name = (
                        column
                        if seen[column] == 1 and column not in taken
                        else f"{table}__{column}"
                    )
                    value = f"{pick}.{_q(column)}"
                    if column.endswith(HOURS_SINCE_SUFFIX):
                        # The table counts from its own horizon; the training row's event
                        # time is later by the gap to it, so the hours since are too.
                        value = (
                            f"{value} + (epoch({pick}.__event_time) - "
                            f"epoch({pick}.horizon_datetime)) / 3600.0"
                        )
                    select.append(f"{value} AS {_q(name)}")
                select.append(f"{pick}.horizon_datetime AS {_q(f'{table}__horizon_datetime')}")
                select.append(f"{pick}.known_at AS {_q(f'{table}__known_at')}")
                known = f" AND f.known_at <= {moment}" if known_at else ""
                picks.append(
                    f"{pick} AS (SELECT s.{row_id} AS __row, {moment} AS __event_time, f.* "  # nosec B608: identifiers from code or validated config; values bound
                    f"FROM spine s JOIN {alias} f ON s.{key} = f.{key} "
                    f"AND f.horizon_datetime <= {moment}{known} "
                    f"QUALIFY row_number() OVER (PARTITION BY s.{row_id} "
                    "ORDER BY f.horizon_datetime DESC, f.known_at DESC) = 1)"
                )
                joins.append(f"LEFT JOIN {pick} ON {pick}.__row = s.{row_id}")
            if codelists:
                data = self.open_table(
                    (*FEATURE_ZONE, DIAGNOSES_TABLE),
                    columns=[entity_key, "horizon_datetime", "known_at", "icd10_code"],
                    version=(versions or {}).get(DIAGNOSES_TABLE),
                )
                con.register("dx", data)
                recorded = "known_at" if known_at else "horizon_datetime"
                timing = f"d.{recorded} <= {moment}"
                for codelist in codelists.values():
                    name = f"codelist_{codelist.name.replace('-', '_')}"
                    select.append(
                        f"EXISTS (SELECT 1 FROM dx d WHERE d.{key} = s.{key} AND {timing} "  # nosec B608: identifiers from code or validated config; values bound
                        f"AND {matches_sql('d.icd10_code', codelist)}) AS {_q(name)}"
                    )
            with_clause = f"WITH {', '.join(picks)} " if picks else ""
            query = (
                f"{with_clause}SELECT {', '.join(select)} FROM spine s "  # nosec B608: identifiers from code or validated config; values bound
                f"{' '.join(joins)} ORDER BY s.{row_id}"
            )
            result = con.sql(query).to_arrow_table()
        finally:
            con.close()
        return convert(result, output)

    # -- export ----------------------------------------------------------------------

    def export_to_sql(
        self,
        name: str,
        target: str | Engine,
        *,
        table_name: str | None = None,
        version: int | None = None,
        batch_size: int = 5_000,
    ) -> int:
        """Upsert a feature table into a SQL database (a SQL feature store, as FlowEHR has).

        The SQL table is created when missing, keyed on the table's keys;
        rows are inserted or updated by key (``ON CONFLICT`` on SQLite and PostgreSQL, a
        delete-then-insert in one transaction elsewhere, e.g. SQL Server). Rows removed
        from the feature store are not removed from the SQL copy.

        Args:
            name: the feature table.
            target: a SQLAlchemy URL or engine.
            table_name: the SQL table (default ``features_<name>``).
            version: export an earlier Delta version.
            batch_size: rows per statement.

        Returns:
            The rows written.
        """
        import sqlalchemy as sa

        spec = self.spec(name)
        data = self.open_table((*FEATURE_ZONE, name), version=version)
        engine = sa.create_engine(target) if isinstance(target, str) else target
        metadata = sa.MetaData()
        table = sa.Table(
            table_name or f"features_{name}",
            metadata,
            *(
                sa.Column(c.name, sql_type(c.type), primary_key=c.name in spec.keys)
                for c in spec.columns
            ),
        )
        metadata.create_all(engine)
        dialect = engine.dialect.name
        naive = dialect == "sqlite"  # SQLite has no time zones: store UTC wall time
        written = 0
        with engine.begin() as conn:
            for batch in data.to_batches(max_chunksize=batch_size):
                rows = [sql_row(r, naive=naive) for r in batch.to_pylist()]
                if not rows:
                    continue
                upsert_rows(conn, table, rows, dialect, list(spec.keys))
                written += len(rows)
        return written


# -- helpers ---------------------------------------------------------------------------


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
