"""The reporting SQL (DuckDB's dialect) as Spark SQL: sqlglot, plus what sqlglot misses.

sqlglot translates most of the reporting SQL as it is (null ordering included: it
writes ``NULLS LAST`` where DuckDB's default differs from Spark's). What it leaves
wrong, or to a function Spark does not have, is rewritten here on the parsed tree, so
the ``.sql`` files stay DuckDB SQL and DuckDB's results do not move:

- ``epoch_us(t)`` is ``unix_micros(t)``.
- ``timezone(zone, t)`` (an instant's wall-clock time in ``zone``) is
  ``from_utc_timestamp(t, zone)``: Spark's version reads the wall clock in the session
  time zone, so the session must be in UTC (``spark_sql.run_spark_query`` checks it).
- ``isodow(t)``: sqlglot writes ``dayofweek(t) % 7 + 1``, which is wrong for Spark's
  Sunday-first ``dayofweek``; here it is ``extract(DAYOFWEEK_ISO FROM t)``.
- ``isoyear(t)`` and ``week(t)`` (ISO week) are ``extract(YEAROFWEEK FROM t)`` and
  ``weekofyear(t)``.
- ``year``, ``month``, ``day`` and the ISO parts return INT on Spark, BIGINT on DuckDB:
  they are cast to BIGINT, so a view's column has one type on both engines.
- ``strftime(t, format)``: sqlglot leaves DuckDB's literal text and ``%g``
  (milliseconds) in Spark's pattern; the pattern is translated here, literal text
  quoted.
- ``quantile_disc(x, q)`` is ``percentile_disc(q) WITHIN GROUP (ORDER BY x)``: both
  give the first value whose cumulative distribution reaches ``q``. A list of ``q`` is
  an ``array`` of one such aggregate per element; an aggregate ``FILTER`` goes to each.
- Several ``unnest(list)`` in one SELECT list, which DuckDB zips, are one
  ``inline(arrays_zip(...)) AS (names)``: Spark allows one generator per SELECT.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import sqlglot
from sqlglot import exp

SPARK = "spark"
# DuckDB strftime directives the reporting SQL uses -> Spark datetime pattern letters.
_STRFTIME = {
    "%Y": "yyyy",
    "%m": "MM",
    "%d": "dd",
    "%H": "HH",
    "%M": "mm",
    "%S": "ss",
    "%g": "SSS",
    "%f": "SSSSSS",
}
_DIRECTIVE = re.compile(r"%.")
_RENAMED = {"EPOCH_US": "UNIX_MICROS"}
_PLAIN = re.compile(r"[-:./ ,]*")


def to_spark(sql: str, *, pretty: bool = False, references: Collection[str] = ()) -> str:
    """DuckDB-dialect reporting SQL (one or more statements) as Spark SQL.

    Args:
        sql: the statements.
        pretty: indent the output.
        references: input tables to write as ``{name}`` fields for ``SparkSession.sql``'s
            DataFrame arguments (the rest of the text's braces doubled), so the query
            carries its inputs instead of reading session-wide temporary views.
    """
    statements = [
        _adjust(tree, frozenset(references)).sql(dialect=SPARK, pretty=pretty)
        for tree in sqlglot.parse(sql, read="duckdb")
        if tree is not None
    ]
    text = ";\n".join(statements)
    if not references:
        return text
    text = text.replace("{", "{{").replace("}", "}}")
    for name in references:
        text = text.replace(_sentinel(name), f"{{{name}}}")
    return text


def _sentinel(name: str) -> str:
    """A stand-in identifier for an input table, replaced by a ``{name}`` field."""
    return f"flowehr_input_{name}_flowehr"


def spark_pattern(strftime_format: str) -> str:
    """A DuckDB ``strftime`` format as a Spark ``date_format`` pattern (literals quoted)."""
    parts: list[str] = []
    position = 0
    for match in _DIRECTIVE.finditer(strftime_format):
        parts.append(_quoted(strftime_format[position : match.start()]))
        directive = match.group(0)
        if directive == "%%":
            parts.append(_quoted("%"))
        elif directive in _STRFTIME:
            parts.append(_STRFTIME[directive])
        else:
            raise ValueError(f"strftime directive {directive} has no Spark translation here")
        position = match.end()
    parts.append(_quoted(strftime_format[position:]))
    return "".join(parts)


def _quoted(text: str) -> str:
    """Literal pattern text: separators as they are, anything else in quotes."""
    if _PLAIN.fullmatch(text):
        return text
    return "'" + text.replace("'", "''") + "'"


def _adjust(tree: exp.Expr, references: frozenset[str]) -> exp.Expr:
    tree = tree.transform(_rewrite_node)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        name = table.name
        if name in references and name not in ctes and not table.args.get("db"):
            if not table.alias:  # columns may be qualified by the table's own name
                table.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
            table.set("this", exp.to_identifier(_sentinel(name)))
    for select in list(tree.find_all(exp.Select)):
        _zip_unnests(select)
    return tree


def _bigint(node: exp.Expression) -> exp.Expression:
    return exp.cast(node, exp.DataType.build("BIGINT"))


def _extract(part: str, value: exp.Expression) -> exp.Expression:
    return _bigint(exp.Extract(this=exp.var(part), expression=value))


def _rewrite_node(node: exp.Expression) -> exp.Expression:
    """One node's Spark form (``transform`` calls it on every node, parents first)."""
    if isinstance(node, exp.Anonymous):
        name = str(node.this).upper()
        if name in _RENAMED:
            return exp.Anonymous(this=_RENAMED[name], expressions=node.expressions)
        if name == "TIMEZONE" and len(node.expressions) == 2:
            zone, value = node.expressions
            return exp.Anonymous(this="FROM_UTC_TIMESTAMP", expressions=[value, zone])
        if name == "ISOYEAR":
            return _extract("YEAROFWEEK", node.expressions[0])
    if isinstance(node, exp.DayOfWeekIso):
        return _extract("DAYOFWEEK_ISO", node.this)
    if isinstance(node, exp.Week):
        return _bigint(exp.Anonymous(this="WEEKOFYEAR", expressions=[node.this]))
    if isinstance(node, exp.Year | exp.Month | exp.Day) and not isinstance(node.parent, exp.Cast):
        return _bigint(node.copy())
    if isinstance(node, exp.TimeToStr):
        pattern = exp.Literal.string(spark_pattern(node.args["format"].name))
        return exp.Anonymous(this="DATE_FORMAT", expressions=[node.this, pattern])
    if isinstance(node, exp.Filter) and isinstance(node.this, exp.PercentileDisc):
        return _percentile_disc(node.this, node.expression)
    if isinstance(node, exp.PercentileDisc) and not isinstance(node.parent, exp.Filter):
        return _percentile_disc(node, None)
    return node


def _percentile_disc(node: exp.PercentileDisc, where: exp.Expression | None) -> exp.Expression:
    """``quantile_disc(x, q)`` as Spark's ordered-set aggregate (optionally filtered)."""
    value, fractions = node.this, node.expression

    def one(fraction: exp.Expression) -> exp.Expression:
        order = exp.Order(expressions=[exp.Ordered(this=value.copy(), nulls_first=False)])
        # By name: sqlglot writes its PercentileDisc node as Spark's percentile_approx.
        aggregate: exp.Expression = exp.WithinGroup(
            this=exp.Anonymous(this="PERCENTILE_DISC", expressions=[fraction.copy()]),
            expression=order,
        )
        return exp.Filter(this=aggregate, expression=where.copy()) if where else aggregate

    if isinstance(fractions, exp.Array):
        return exp.Array(expressions=[one(f) for f in fractions.expressions])
    return one(fractions)


def _zip_unnests(select: exp.Select) -> None:
    """Several ``explode`` projections (DuckDB unnests, zipped) as one ``inline(arrays_zip)``."""
    positions = [
        i
        for i, projection in enumerate(select.expressions)
        if isinstance(projection.unalias(), exp.Explode)
    ]
    if len(positions) < 2:
        return
    if positions != list(range(positions[0], positions[0] + len(positions))):
        raise ValueError("unnests zipped in one SELECT must be adjacent for Spark")
    projections = [select.expressions[i] for i in positions]
    names = [p.alias_or_name for p in projections]
    if not all(names):
        raise ValueError("unnests zipped in one SELECT need aliases for Spark")
    zipped = exp.Anonymous(
        this="ARRAYS_ZIP", expressions=[p.unalias().this.copy() for p in projections]
    )
    generator = exp.Aliases(
        this=exp.Anonymous(this="INLINE", expressions=[zipped]),
        expressions=[exp.to_identifier(n) for n in names],
    )
    kept = [
        *select.expressions[: positions[0]],
        generator,
        *select.expressions[positions[-1] + 1 :],
    ]
    select.set("expressions", kept)
