"""Data-quality measures shared by asset checks here and jobs on Databricks.

They return counts, never values: check metadata is shown in the UI, and the values
of a key column can be patient identifiers.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def duplicate_key_count(data: pa.Table, keys: list[str]) -> int:
    """How many rows share their key with an earlier row."""
    if data.num_rows == 0:
        return 0
    distinct = data.select(keys).group_by(keys).aggregate([]).num_rows
    return data.num_rows - distinct


def null_key_count(data: pa.Table, keys: list[str]) -> int:
    """How many rows have a null in any key column."""
    if data.num_rows == 0:
        return 0
    mask = pc.is_null(data[keys[0]])
    for key in keys[1:]:
        mask = pc.or_(mask, pc.is_null(data[key]))
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)


# -- the pre-write guard of published tables ---------------------------------------------

IDENTIFIER_COLUMN_NAMES: frozenset[str] = frozenset(
    {
        "nhs_number",
        "nhsnumber",
        "nhs_no",
        "mrn",
        "hospital_number",
        "name",
        "full_name",
        "patient_name",
        "given_name",
        "first_name",
        "forename",
        "family_name",
        "last_name",
        "surname",
        "dob",
        "date_of_birth",
        "birth_date",
        "postcode",
        "post_code",
        "patient_id",
    }
)
"""Column names that carry a patient identifier (``postcode_district``, ``birth_year``
and ``nhsnumberhash`` are the safe, reduced forms and are not listed)."""

NHS_NUMBER_SHAPE = r"(?:^|[^0-9A-Za-z])(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?:$|[^0-9A-Za-z])"


class IdentifierLeakError(RuntimeError):
    """A table bound for a published zone carries a patient identifier."""


def identifier_columns(names: list[str]) -> list[str]:
    """Columns whose name says they hold an identifier (case and separators ignored)."""
    return [n for n in names if n.lower().replace("-", "_").strip("_") in IDENTIFIER_COLUMN_NAMES]


def nhs_number_valued_columns(data: pa.Table) -> list[str]:
    """Text columns holding a value shaped like a valid NHS number (mod-11 checked).

    A vectorised regex narrows each column to candidate values; only those are checked
    in Python, so a clean column costs one pass of the regex.
    """
    import re

    from transforms.identifiers import nhs_number_problem

    shape = re.compile(NHS_NUMBER_SHAPE)
    found = []
    for name in data.column_names:
        column = data[name]
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        candidates = pc.filter(column, pc.match_substring_regex(column, NHS_NUMBER_SHAPE))
        for value in pc.unique(candidates).to_pylist():
            if any(nhs_number_problem("".join(m.groups())) is None for m in shape.finditer(value)):
                found.append(name)
                break
    return found


def refuse_identifiers(data: pa.Table, *, destination: str, values: bool = True) -> None:
    """Refuse, before it is written, a published table that carries identifiers.

    Blocking checks run after a Delta commit, when the column is already published;
    this runs in the write path instead.

    Raises:
        IdentifierLeakError: naming the destination and columns (never a value).
    """
    by_name = identifier_columns(data.column_names)
    by_value = nhs_number_valued_columns(data) if values else []
    problems = [f"'{c}' is an identifier column" for c in by_name] + [
        f"'{c}' holds NHS numbers" for c in by_value if c not in by_name
    ]
    if problems:
        raise IdentifierLeakError(
            f"refusing to write {destination}: {'; '.join(problems)} (published zones never "
            "hold patient identifiers)"
        )
