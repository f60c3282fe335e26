"""A source database reached through SQLAlchemy (SQLite, PostgreSQL, SQL Server).

The engine is created per run process in ``setup_for_execution`` and disposed of
afterwards: nothing connects when the code location loads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import URL, Connection, Engine, make_url

INT64_MAX = 2**63 - 1
"""No changelog number can exceed it; in SQLite, text sorts above every number."""


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
        """The source's newest usable change number for a table (None when it has none).

        Only whole numbers count: a loosely typed source (SQLite) can hold text in the
        change column, which sorts above every number there, and a fraction is no
        changelog number either, so the head is always one a load can reach
        (``unusable_changes`` finds the rest).
        """
        column = table.c[change_column]
        whole = sa.and_(column <= INT64_MAX, sa.cast(column, sa.BigInteger) == column)
        query = sa.select(sa.func.max(column)).where(whole)
        with self.using(connection) as connection:
            value = connection.execute(query).scalar()
        return whole_part(value)

    def unusable_changes(
        self,
        table: sa.Table | sa.TableClause,
        change_column: str,
        *,
        after: int,
        connection: Connection | None = None,
    ) -> list[dict[str, Any]]:
        """Rows no changelog load can ever read: a missing change number, or one above
        ``after`` that is not a whole number (text, a fraction, one too large).

        The keyset batches read whole numbers only, so without this such a row would be
        skipped for good while the lag showed nothing.
        """
        column = table.c[change_column]
        not_whole = sa.or_(column > INT64_MAX, sa.cast(column, sa.BigInteger) != column)
        query = sa.select(sa.text("*")).select_from(table)
        query = query.where(sa.or_(column.is_(None), sa.and_(column > after, not_whole)))
        with self.using(connection) as connection:
            return [dict(row) for row in connection.execute(query).mappings().all()]


def whole_part(value: Any) -> int | None:
    """A change number as an int (a fraction counts down); None for none or non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        return int(value // 1)
    return None


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


def arrow_column(values: Sequence[Any], data_type: pa.DataType) -> pa.Array:
    """Source values as an Arrow column of ``data_type``, refusing any lossy conversion.

    Arrow converts a Python float to an integer type by truncating it (97.5 becomes 97);
    a loosely typed source can hold such a value in an integer column, so integer
    columns are inferred first and then cast safely, which refuses a fraction.

    Raises:
        pa.ArrowInvalid, pa.ArrowTypeError, OverflowError: a value does not fit.
    """
    if pa.types.is_integer(data_type):
        return pa.array(values).cast(data_type, safe=True)
    return pa.array(values, type=data_type)
