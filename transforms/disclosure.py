"""Statistical disclosure control of published counts of people (pure Arrow).

One policy, applied where a table is written, never left to each reader:

* ``round`` (the default): a count of 1 to ``threshold`` (7) people is suppressed (null:
  a true zero stays 0, so a suppressed cell is always told apart from a zero), and
  every other count is rounded to the nearest ``rounding_base`` (5). A total is the
  sum of rounded cells, or a rounded count in its own right, never an unrounded sum.
  Redacting at 7 before rounding to 5 protects every count of 5 or fewer people, which
  redacting at 5 would not (6 and 7 both round to 5).
* ``midpoint6``: ``ceil(n / 6) * 6 - 3`` for n > 0 and 0 for 0 (1-6 -> 3, 7-12 -> 9):
  zero stays zero, the rounding is unbiased, and no cell needs suppressing. The column
  is published as ``<name>_midpoint6`` so no reader takes a 3 for a true 3.

A rate or mean whose denominator is a protected count is suppressed with it
(``suppress_with``). The rule is recorded in the table's properties
(``DISCLOSURE_RULE_PROPERTY``, ``DISCLOSURE_COLUMNS_PROPERTY``) so a scan can check
every published table against the rule it claims. Hand-rolled: the rule is three lines
of arithmetic over Arrow columns, and the SDC packages on PyPI work on pandas frames of
microdata rather than on a published column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

DisclosureMethod = Literal["round", "midpoint6"]
DISCLOSURE_RULE_PROPERTY = "flowehr.disclosure.rule"
DISCLOSURE_COLUMNS_PROPERTY = "flowehr.disclosure.columns"
MIDPOINT6_SUFFIX = "_midpoint6"


@dataclass(frozen=True)
class DisclosurePolicy:
    """How published counts of people are protected (config ``governance.disclosure``)."""

    threshold: int = 7
    rounding_base: int = 5
    method: DisclosureMethod = "round"

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.rounding_base < 1:
            raise ValueError("threshold must be >= 0 and rounding_base >= 1")

    @property
    def rule(self) -> str:
        """The rule in words, as table properties and the data dictionary record it."""
        if self.method == "midpoint6":
            return "midpoint6: 0 stays 0, n > 0 becomes ceil(n/6)*6-3 (1-6 -> 3, 7-12 -> 9)"
        return (
            f"round: 1-{self.threshold} suppressed (null; 0 stays 0), "
            f"the rest rounded to the nearest {self.rounding_base}"
        )

    def published_name(self, column: str) -> str:
        """The name a protected count is published under."""
        return f"{column}{MIDPOINT6_SUFFIX}" if self.method == "midpoint6" else column

    def protect_value(self, count: int | None) -> int | None:
        """One count, protected (None stays None: nothing was counted)."""
        if count is None:
            return None
        if self.method == "midpoint6":
            return 0 if count == 0 else -(-count // 6) * 6 - 3
        if 0 < count <= self.threshold:
            return None
        return (count + self.rounding_base // 2) // self.rounding_base * self.rounding_base

    def shown(self, count: int) -> str:
        """A count of people as text for a summary line or metadata: the published
        value, or the range a suppressed count lies in."""
        value = self.protect_value(count)
        return f"1-{self.threshold}" if value is None else f"{value:,}"

    def protect(self, counts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """A column of counts, protected (vectorised ``protect_value``)."""
        counts = counts.cast(pa.int64())
        if self.method == "midpoint6":
            sixes = pc.multiply(pc.divide(pc.add(counts, 5), 6), 6)  # ceil(n/6)*6 for n >= 0
            return pc.if_else(pc.equal(counts, 0), 0, pc.subtract(sixes, 3))
        base = self.rounding_base
        rounded = pc.multiply(pc.divide(pc.add(counts, base // 2), base), base)
        small = pc.and_(pc.greater(counts, 0), pc.less_equal(counts, self.threshold))
        return pc.if_else(small, pa.scalar(None, pa.int64()), rounded)

    def unprotected(self, published: pa.Array | pa.ChunkedArray) -> int:
        """How many published cells break this rule (a count left as it was counted)."""
        values = published.cast(pa.int64())
        if self.method == "midpoint6":
            bad = pc.and_(pc.not_equal(values, 0), pc.not_equal(pc.remainder(values, 6), 3))
        else:
            # Below the smallest value rounding a count over the threshold can give.
            floor = self.protect_value(self.threshold + 1) or 0
            small = pc.and_(pc.greater(values, 0), pc.less(values, floor))
            bad = pc.or_(small, pc.not_equal(pc.remainder(values, self.rounding_base), 0))
        return int(pc.sum(pc.fill_null(bad, False).cast(pa.int64())).as_py() or 0)

    def properties(self, columns: Sequence[str]) -> dict[str, str]:
        """The table properties recording the rule and the columns it protects."""
        return {
            DISCLOSURE_RULE_PROPERTY: self.encode(),
            DISCLOSURE_COLUMNS_PROPERTY: ",".join(columns),
        }

    def encode(self) -> str:
        return f"method={self.method};threshold={self.threshold};base={self.rounding_base}"

    @classmethod
    def decode(cls, text: str) -> DisclosurePolicy:
        """The policy a table's ``DISCLOSURE_RULE_PROPERTY`` records."""
        parts = dict(item.split("=", 1) for item in text.split(";") if "=" in item)
        method = parts.get("method", "round")
        if method not in ("round", "midpoint6"):
            raise ValueError(f"unknown disclosure method {method!r}")
        return cls(
            threshold=int(parts.get("threshold", 7)),
            rounding_base=int(parts.get("base", 5)),
            method="midpoint6" if method == "midpoint6" else "round",
        )


def recorded_rule(
    configuration: Mapping[str, str],
) -> tuple[DisclosurePolicy | None, list[str]]:
    """The rule and protected columns a table's properties record (None: no rule)."""
    rule = configuration.get(DISCLOSURE_RULE_PROPERTY)
    columns = [c for c in configuration.get(DISCLOSURE_COLUMNS_PROPERTY, "").split(",") if c]
    return (None if not rule else DisclosurePolicy.decode(rule)), columns


def protect_counts(
    table: pa.Table,
    policy: DisclosurePolicy,
    counts: Sequence[str],
    suppress_with: Mapping[str, str] | None = None,
) -> pa.Table:
    """``table`` with each count of people protected (renamed for ``midpoint6``), and
    each ``suppress_with`` column (rate -> its protected denominator) nulled where the
    denominator is suppressed or at or below the threshold.

    Rates are suppressed from the counts as counted, before rounding, so a rate never
    describes a small group whichever method is used.
    """
    raw = {name: table[name] for name in counts}
    for name, denominator in (suppress_with or {}).items():
        small = pc.less_equal(raw[denominator].cast(pa.int64()), policy.threshold)
        index = table.schema.get_field_index(name)
        nulled = pc.if_else(
            pc.fill_null(small, True), pa.scalar(None, table[name].type), table[name]
        )
        table = table.set_column(index, table.schema.field(index), nulled)
    for name in counts:
        index = table.schema.get_field_index(name)
        field = pa.field(policy.published_name(name), pa.int64(), nullable=True)
        table = table.set_column(index, field, policy.protect(raw[name]))
    return table


def unprotected_cells(table: pa.Table, policy: DisclosurePolicy, columns: Sequence[str]) -> int:
    """Cells of the named published columns that break the policy."""
    return sum(policy.unprotected(table[name]) for name in columns if name in table.column_names)
