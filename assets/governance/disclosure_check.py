"""The blocking check every published aggregate of people carries: no count left as
counted at or below the disclosure threshold, and the rule recorded on the table."""

from __future__ import annotations

import dagster as dg

from resources.delta.store import DeltaTableStore, TablePath
from transforms.disclosure import recorded_rule, unprotected_cells

DISCLOSURE_CHECK = "disclosure_control"


def disclosure_check_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    """Blocking: a table that publishes an unprotected count of people stops the run."""
    return dg.AssetCheckSpec(
        DISCLOSURE_CHECK,
        asset=key,
        blocking=True,
        description="Every count of people obeys the recorded disclosure rule (small counts "
        "suppressed, the rest rounded; or midpoint-6).",
    )


def disclosure_check(delta: DeltaTableStore, path: TablePath) -> dg.AssetCheckResult:
    """Read the published table back and count the cells that break its recorded rule."""
    policy, columns = recorded_rule(delta.table(path).metadata().configuration)
    if policy is None or not columns:
        return dg.AssetCheckResult(
            check_name=DISCLOSURE_CHECK,
            passed=False,
            metadata={"problem": "no disclosure rule recorded on the table"},
        )
    data = delta.read(path)
    missing = [c for c in columns if c not in data.column_names]
    bad = unprotected_cells(data, policy, columns)
    return dg.AssetCheckResult(
        check_name=DISCLOSURE_CHECK,
        passed=bad == 0 and not missing,
        metadata={
            "rule": policy.rule,
            "columns": ", ".join(columns),
            "unprotected_cells": bad,
            **({"missing_columns": ", ".join(missing)} if missing else {}),
        },
    )
