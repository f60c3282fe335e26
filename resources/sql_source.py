"""A source database reached through SQLAlchemy (SQLite, PostgreSQL, SQL Server).

The engine is created per run process in ``setup_for_execution`` and disposed of
afterwards: nothing connects when the code location loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import URL, Connection, Engine, make_url


class SourceUnavailableError(RuntimeError):
    """The source database cannot be reached or refused the credentials."""


class SqlSourceResource(dg.ConfigurableResource):
    """A named EHR source database."""

    url: str = Field(description="SQLAlchemy URL without the password.")
    password: str | None = Field(
        default=None, description="Database password, supplied through an EnvVar."
    )
    _engine: Engine | None = PrivateAttr(default=None)

    def _url(self) -> URL:
        url = make_url(self.url)
        return url.set(password=self.password) if self.password else url

    def display_url(self) -> str:
        """The URL with any password masked, for logs and metadata."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self._url(), pool_pre_ping=True)
        return self._engine

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; failures to connect become one clear error without the password.

        Raises:
            SourceUnavailableError: when the database cannot be reached.
        """
        try:
            connection = self.engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            if self.password:
                reason = reason.replace(self.password, "***")
            raise SourceUnavailableError(
                f"cannot connect to source {self.display_url()}: {reason}"
            ) from None
        with connection:
            yield connection

    @contextmanager
    def using(self, connection: Connection | None) -> Iterator[Connection]:
        """The caller's connection when it has one (a load makes every query on one),
        else a new one."""
        if connection is not None:
            yield connection
            return
        with self.connect() as new:
            yield new

    def reflect(self, table_name: str, *, connection: Connection | None = None) -> sa.Table:
        """The source table's definition, read from the database.

        Raises:
            SourceUnavailableError: when the database is unreachable or lacks the table.
        """
        with self.using(connection) as connection:
            try:
                return sa.Table(table_name, sa.MetaData(), autoload_with=connection)
            except sa.exc.NoSuchTableError:
                raise SourceUnavailableError(
                    f"source {self.display_url()} has no table '{table_name}'"
                ) from None

    def read_changes(
        self, table: sa.Table, *, change_column: str, after: int, limit: int
    ) -> pa.Table:
        """Rows whose change number exceeds ``after``, oldest first, at most ``limit``.

        Keyset pagination on the change column keeps every batch an index range scan,
        however far into the table the load has got.
        """
        change = table.c[change_column]
        query = sa.select(table).where(change > after).order_by(change).limit(limit)
        schema = arrow_schema(table)
        with self.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return pa.Table.from_pylist([dict(row) for row in rows], schema=schema)

    def scalar(self, query: str, params: dict[str, Any] | None = None) -> Any:
        with self.connect() as connection:
            return connection.execute(sa.text(query), params or {}).scalar()

    def max_change(
        self,
        table: sa.Table | sa.TableClause,
        change_column: str,
        *,
        connection: Connection | None = None,
    ) -> int | None:
        """The source's newest change number for a table (None when empty)."""
        with self.using(connection) as connection:
            value = connection.execute(sa.select(sa.func.max(table.c[change_column]))).scalar()
        return None if value is None else int(value)


def arrow_type(column_type: sa.types.TypeEngine[Any]) -> pa.DataType:
    """The Arrow type that holds a SQL column's values without loss."""
    if isinstance(column_type, sa.Boolean):
        return pa.bool_()
    if isinstance(column_type, sa.Integer):
        return pa.int64()
    if isinstance(column_type, sa.Float | sa.Numeric):
        return pa.float64()
    if isinstance(column_type, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(column_type, sa.Date):
        return pa.date32()
    return pa.string()


def arrow_schema(table: sa.Table) -> pa.Schema:
    """An explicit schema, so a batch whose column is all NULL keeps its type."""
    return pa.schema([(column.name, arrow_type(column.type)) for column in table.columns])
