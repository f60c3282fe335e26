"""The disclosure part of ``flowehr privacy-scan``: every published table, read back.

Independent of the writers: a table that records a disclosure rule is checked cell by
cell against it, and a column whose name says it counts people (``recipientcount``,
``patient_count``, ``n_people`` ...) but that no rule covers is reported too, so a new
aggregate published without disclosure control is found even though its writer never
declared it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa

from flowehr_pipelines.privacy_scan import Finding
from resources.delta.store import DeltaTableStore
from transforms.disclosure import recorded_rule, unprotected_cells

PEOPLE_COUNT_NAME = re.compile(
    r"(recipient|people|person|patient|individual)s?_?(count|total|number)"
    r"|^(n|num|number|count|total)_?(of_)?(monthly_?)?(people|persons|patients|recipients)"
    r"|^total\w*recipients",
    re.IGNORECASE,
)


def people_count_columns(schema: pa.Schema) -> list[str]:
    """Integer columns whose name says they count people."""
    return [
        f.name
        for f in schema
        if pa.types.is_integer(f.type) and PEOPLE_COUNT_NAME.search(f.name) is not None
    ]


def scan_disclosure(delta: DeltaTableStore, tables: Sequence[str]) -> list[Finding]:
    """Findings for counts of people that break their table's rule or have none."""
    findings: list[Finding] = []
    for table in tables:
        path = tuple(table.split("/"))
        policy, declared = recorded_rule(delta.table(path).metadata().configuration)
        data = delta.read(path)
        for column in people_count_columns(data.schema):
            if column not in declared or policy is None:
                findings.append(
                    Finding(table, column, "a count of people under no disclosure rule", 1)
                )
        if policy is None:
            continue
        for column in declared:
            bad = unprotected_cells(data, policy, [column])
            if bad:
                kind = f"counts of people breaking its rule ({policy.rule})"
                findings.append(Finding(table, column, kind, bad))
    return findings
