"""k-anonymity of a published table over the quasi-identifiers it exposes (DuckDB over Arrow).

Patients, not rows, are counted: a patient with several visits is one member of each
equivalence class (combination of quasi-identifier values) their rows fall in, so a
longitudinal table is not made to look safer by repeat visits. A missing value is a
value of its own (NULL groups with NULL), except that a row with every
quasi-identifier withheld matches anyone and so is no class at all (the top level of
``transforms.features.generalise``). The report gives the smallest class and the share
of patients in a class smaller than ``k``.

Hand-rolled: the measure is one grouped count. The PyPI packages that compute it
(``pycanon``, ``anjana``) take a pandas frame in memory and would add a dependency for
that query. Generalising a table until it passes is ``transforms.features.generalise``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa


@dataclass(frozen=True)
class KAnonymityReport:
    """How identifiable the patients of one table are through its quasi-identifiers."""

    k: int
    quasi_identifiers: tuple[str, ...]
    people: int
    classes: int
    smallest_class: int
    people_below_k: int
    people_withheld: int = 0

    @property
    def share_below_k(self) -> float:
        return self.people_below_k / self.people if self.people else 0.0

    @property
    def anonymous(self) -> bool:
        """Every class holds at least ``k`` patients (an empty table is trivially so)."""
        return self.people_below_k == 0


def measure_k_anonymity(
    table: pa.Table,
    quasi_identifiers: Sequence[str],
    *,
    k: int,
    person_column: str = "person_key",
) -> KAnonymityReport:
    """Equivalence classes of ``table`` over ``quasi_identifiers``, counted in patients."""
    qis = tuple(quasi_identifiers)
    if not qis:
        raise ValueError("no quasi-identifiers to measure")
    columns = ", ".join(_quoted(c) for c in qis)
    person = _quoted(person_column)
    withheld = " AND ".join(f"{_quoted(c)} IS NULL" for c in qis)
    connection = duckdb.connect()
    try:
        connection.register("t", table.select([person_column, *qis]))
        # Column names are quoted identifiers; the only value (k) is bound.
        people, classes, smallest, below, hidden = connection.execute(
            f"""
            WITH sized AS (
                SELECT {person} AS person, ({withheld}) AS withheld,
                       COUNT(DISTINCT {person}) OVER (PARTITION BY {columns}) AS size,
                       DENSE_RANK() OVER (ORDER BY {columns}) AS class
                FROM t
                WHERE {person} IS NOT NULL
            )
            SELECT COUNT(DISTINCT person),
                   COUNT(DISTINCT class) FILTER (WHERE NOT withheld),
                   MIN(size) FILTER (WHERE NOT withheld),
                   COUNT(DISTINCT person) FILTER (WHERE size < ? AND NOT withheld),
                   COUNT(DISTINCT person) FILTER (WHERE withheld)
            FROM sized
            """,  # nosec B608: identifiers quoted, values bound
            [k],
        ).fetchone() or (0, 0, None, 0, 0)
    finally:
        connection.close()
    return KAnonymityReport(
        k=k,
        quasi_identifiers=qis,
        people=int(people or 0),
        classes=int(classes or 0),
        smallest_class=int(smallest or 0),
        people_below_k=int(below or 0),
        people_withheld=int(hidden or 0),
    )


def _quoted(name: str) -> str:
    """A column name as a SQL identifier (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'
