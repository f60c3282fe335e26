"""A small code location whose runs fill the metrics tests' instance."""

from __future__ import annotations

import dagster as dg

LOADED = dg.AssetKey(["bronze", "ehr", "patients"])


@dg.asset(
    key=LOADED,
    check_specs=[dg.AssetCheckSpec("overdue", asset=LOADED)],
)
def loaded() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"rows_inserted": 5, "rows_quarantined": 2, "dagster/row_count": 40},
        check_results=[
            dg.AssetCheckResult(
                check_name="overdue",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"flagged": 3},
            )
        ],
    )


@dg.asset(key=["silver", "ehr", "visits"])
def broken() -> None:
    raise RuntimeError("source table vanished")


DEFS = dg.Definitions(
    assets=[loaded, broken],
    jobs=[
        dg.define_asset_job("ehr_job", selection=[LOADED]),
        dg.define_asset_job("silver_job", selection=[broken.key]),
        dg.define_asset_job("reporting_job", selection=[LOADED]),
    ],
)
