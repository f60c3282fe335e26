"""The National Data Opt-out list as pseudonyms, and its removal from research inputs.

Pure Python, Arrow and PySpark. The list arrives as NHS numbers (a file or a source
table); each is normalised and validated with the same rule as the EHR path, then
hashed with the same key, so an opted-out patient's pseudonym equals their silver
``person_key``. Only pseudonyms are kept: the list itself never lands in the lake.
Invalid entries are counted by reason with their line number, never their value.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from transforms.identifiers import hmac_sha256_hex, nhs_number_digits, nhs_number_problem

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

OPT_OUT_SCHEMA = pa.schema([pa.field("person_key", pa.string(), nullable=False)])
OPT_OUT_QUARANTINE_SCHEMA = pa.schema([("line_number", pa.int64()), ("reason", pa.string())])


@dataclass
class OptOutList:
    """The pseudonyms of the opted-out patients, and what could not be read."""

    person_keys: set[str] = field(default_factory=set)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def table(self) -> pa.Table:
        """The pseudonyms, sorted (the same list gives the same bytes)."""
        return pa.table({"person_key": sorted(self.person_keys)}, schema=OPT_OUT_SCHEMA)

    def quarantine(self) -> pa.Table:
        return pa.Table.from_pylist(
            [{"line_number": n, "reason": r} for n, r in self.rejected],
            schema=OPT_OUT_QUARANTINE_SCHEMA,
        )

    def reasons(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.rejected))


def pseudonymise_opt_outs(values: Iterable[tuple[int, object]], key: bytes) -> OptOutList:
    """Hash each valid NHS number of ``(line number, value)`` pairs; set the rest aside."""
    result = OptOutList()
    for line, value in values:
        problem = nhs_number_problem(value)
        digits = nhs_number_digits(value) if isinstance(value, str) else None
        if problem is not None or digits is None:
            result.rejected.append((line, f"not a valid NHS number: {problem or 'unreadable'}"))
            continue
        result.person_keys.add(hmac_sha256_hex(key, digits))
    return result


def file_entries(text: str, column: str = "nhs_number") -> list[tuple[int, object]]:
    """The entries of an opt-out file: one NHS number per line, or a CSV with ``column``.

    Blank lines are skipped; a CSV header naming the column selects it.
    """
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if column in [cell.strip().lower() for cell in first.split(",")]:
        reader = csv.DictReader(io.StringIO(text))
        return [(reader.line_num, row.get(column)) for row in reader]
    return [(n + 1, line) for n, line in enumerate(lines) if line.strip()]


def exclude_opted_out(
    inputs: Mapping[str, DataFrame], opted_out: DataFrame | None
) -> dict[str, DataFrame]:
    """Research inputs without the opted-out patients' rows.

    Tables with ``person_key`` lose those patients' rows; tables keyed by visit only
    (observations, results, diagnoses) lose the rows of those patients' visits, found
    through ``visits``. The list is small beside the inputs, so it is broadcast.
    """
    if opted_out is None:
        return dict(inputs)
    from pyspark.sql import functions as F

    people = F.broadcast(opted_out.select("person_key").distinct())
    kept = {
        name: df.join(people, on="person_key", how="left_anti")
        if "person_key" in df.columns
        else df
        for name, df in inputs.items()
    }
    visits = inputs.get("visits")
    if visits is None:
        return kept
    gone = F.broadcast(visits.join(people, on="person_key", how="left_semi").select("visit_id"))
    return {
        name: df.join(gone, on="visit_id", how="left_anti")
        if "visit_id" in df.columns and "person_key" not in df.columns
        else df
        for name, df in kept.items()
    }
