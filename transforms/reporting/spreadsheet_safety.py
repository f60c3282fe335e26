"""Report cells a spreadsheet would run as a formula, made inert (CSV injection).

Report CSVs are opened in Excel and Power BI, which treat a cell that begins with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula
(``=HYPERLINK(...)`` runs when clicked). Following OWASP's CSV-injection guidance,
such a *text* value gets a single quote in front: ``=1+1`` is written ``'=1+1``, which
a spreadsheet shows as the text ``=1+1``. Numbers, dates and other typed columns are
never changed (a negative count stays ``-3``), and a text value that starts otherwise
is untouched.

For a machine reader the rule is exact and reversible: in a text column, a value that
starts with one or more ``'`` followed by one of those six characters had one ``'``
added; drop it. (A value that already began ``'=`` is written ``''=``.) docs/CONTRACTS.md
§3 says the same.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Quotes already in front count too, so that taking one off always restores the value.
FORMULA_START = r"^'*[=+\-@\t\r]"
ESCAPE = "'"


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """The table with each text value that a spreadsheet would run prefixed by ``'``."""
    for index, field in enumerate(table.schema):
        column = table.column(index)
        if field.type == pa.string_view():
            column = column.cast(pa.string())
            field = field.with_type(pa.string())
        elif not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        risky = pc.fill_null(pc.match_substring_regex(column, FORMULA_START), False)
        if not pc.any(risky).as_py():
            continue
        escaped = pc.binary_join_element_wise(pa.scalar(ESCAPE, field.type), column, "")
        table = table.set_column(index, field, pc.if_else(risky, escaped, column))
    return table
