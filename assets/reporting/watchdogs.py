"""Watchdogs: asset checks that count overdue and stuck communications.

NHS Notify runs its watchdog queries against its staging tables and raises an alarm
when they find anything: request item plans with no final status long after they were
created (limits per channel: a letter takes days, an app message minutes), request
items and requests that never finished, items stuck before sending, and send latency
degraded today against the month before. Their limits are whole days before midnight
(UTC) of the evaluation day, and so are ours. Here each is a standalone
``@asset_check`` on the table it reads (a staging table, or for latency the
``raw_latency_3m`` view), evaluated by the watchdog job every hour; its SQL lives in
``transforms/reporting/watchdog_*.sql``.

Each evaluation appends its counts per client and campaign to the time series
``internal/watchdog_metrics`` (once per run and watchdog, so a retried step adds no
duplicate point) and shows them as check metadata. A check fails with severity
ERROR when its total reaches the configured threshold (``degraded_latency``: when the
number of degraded client and campaign pairs does, as NHS Notify's alarm counts them);
the alert sensor then posts it to the webhook. Counts only: no patient value leaves
the staging tables.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.reporting.as_of import AsOfConfig
from assets.reporting.settings import ReportingDomain, WatchdogSettings
from resources.delta.store import DeltaTableStore, Marked
from transforms.reporting import SqlParam, run_sql
from transforms.reporting.staging import (
    REQUEST_ITEM_PLAN_STATUS,
    REQUEST_ITEM_STATUS,
    REQUEST_ITEM_STATUS_SUMMARY,
)

WATCHDOG_METRICS = ("internal", "watchdog_metrics")
WATCHDOG_METRICS_SCHEMA = pa.schema(
    [
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
        ("watchdog", pa.string()),
        ("clientid", pa.string()),
        ("campaignid", pa.string()),
        ("flagged", pa.int64()),
        ("error_at", pa.int64()),
        ("run_id", pa.string()),
    ]
)
# The check metadata lists the worst groups only; the time series keeps them all.
METADATA_GROUPS = 25

ITEM_STATUS_KEY = dg.AssetKey(["reporting", REQUEST_ITEM_STATUS.table])
ITEM_SUMMARY_KEY = dg.AssetKey(["reporting", REQUEST_ITEM_STATUS_SUMMARY.table])
PLAN_STATUS_KEY = dg.AssetKey(["reporting", REQUEST_ITEM_PLAN_STATUS.table])
RAW_LATENCY_KEY = dg.AssetKey(["reporting", "views", "raw_latency_3m"])


def _days_before(now: datetime, days: int) -> datetime:
    """Midnight (UTC) ``days`` before the evaluation day: NHS Notify's day arithmetic."""
    midnight = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    return midnight - timedelta(days=days)


def _lookback(now: datetime, limits: WatchdogSettings) -> datetime:
    return _days_before(now, limits.lookback_days)


def _plan_params(limits: WatchdogSettings, now: datetime) -> dict[str, SqlParam]:
    return {
        "any_overdue_before": _days_before(now, limits.any_plan_overdue_days),
        "fallback_overdue_before": _days_before(now, limits.fallback_plan_overdue_days),
        "lookback_start": _lookback(now, limits),
    }


def _item_params(limits: WatchdogSettings, now: datetime) -> dict[str, SqlParam]:
    return {
        "overdue_before_date": _days_before(now, limits.item_overdue_days).date(),
        "lookback_start_date": _lookback(now, limits).date(),
    }


def _request_params(limits: WatchdogSettings, now: datetime) -> dict[str, SqlParam]:
    return {
        "overdue_before_date": _days_before(now, limits.request_overdue_days).date(),
        "lookback_start_date": _lookback(now, limits).date(),
    }


def _stuck_params(limits: WatchdogSettings, now: datetime) -> dict[str, SqlParam]:
    return {
        "pending_stuck_before": _days_before(now, limits.stuck_pending_enrichment_days),
        "enriched_stuck_before": _days_before(now, limits.stuck_enriched_days),
        "lookback_start": _lookback(now, limits),
    }


def _latency_params(limits: WatchdogSettings, now: datetime) -> dict[str, SqlParam]:
    return {"today": now.astimezone(UTC).date(), "factor": limits.degraded_latency_factor}


@dataclass(frozen=True)
class Watchdog:
    """One watchdog query and the table it guards.

    ``by_groups``: the check fails on the number of client and campaign pairs flagged
    (``degraded_latency_error_at_groups``) instead of the total (``error_at``).
    """

    name: str
    asset: dg.AssetKey
    description: str
    params: Callable[[WatchdogSettings, datetime], dict[str, SqlParam]]
    by_groups: bool = False

    def error_at(self, limits: WatchdogSettings) -> int:
        return limits.degraded_latency_error_at_groups if self.by_groups else limits.error_at

    @property
    def sql(self) -> str:
        return f"watchdog_{self.name}"

    @property
    def table(self) -> str:
        return self.asset.path[-1]


WATCHDOGS: tuple[Watchdog, ...] = (
    Watchdog(
        "overdue_request_item_plans",
        PLAN_STATUS_KEY,
        "Request item plans with no final status past their channel's limit.",
        _plan_params,
    ),
    Watchdog(
        "overdue_request_items",
        ITEM_SUMMARY_KEY,
        "Request items still outstanding two weeks after the day they were created.",
        _item_params,
    ),
    Watchdog(
        "overdue_requests",
        ITEM_STATUS_KEY,
        "Requests (batches) with an unfinished item long after they were created.",
        _request_params,
    ),
    Watchdog(
        "stuck_request_items",
        ITEM_STATUS_KEY,
        "Request items stuck waiting for enrichment or never sent after it.",
        _stuck_params,
    ),
    Watchdog(
        "degraded_latency",
        RAW_LATENCY_KEY,
        "Sending groups whose send latency today is over twice the month's 95th percentile.",
        _latency_params,
        by_groups=True,
    ),
)
WATCHDOG_CHECK_KEYS: tuple[dg.AssetCheckKey, ...] = tuple(
    dg.AssetCheckKey(w.asset, w.name) for w in WATCHDOGS
)


def plan_thresholds(limits: WatchdogSettings, now: datetime) -> pa.Table:
    """Per channel, the creation time before which a first-channel plan is overdue."""
    channels = sorted(limits.plan_overdue_days)
    return pa.table(
        {
            "communicationtype": pa.array(channels, pa.string()),
            "overdue_before": pa.array(
                [_days_before(now, limits.plan_overdue_days[c]) for c in channels],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def evaluate_watchdog(
    watchdog: Watchdog, staging: pa.Table, *, limits: WatchdogSettings, now: datetime
) -> pa.Table:
    """Counts per client and campaign of what one watchdog flags.

    Args:
        watchdog: which watchdog.
        staging: the staging table it reads.
        limits: the configured thresholds.
        now: the evaluation time (aware).

    Returns:
        Rows of (clientid, campaignid, flagged), one per group in the lookback.
    """
    tables = {watchdog.table: staging, "plan_thresholds": plan_thresholds(limits, now)}
    return run_sql(watchdog.sql, tables, watchdog.params(limits, now))


def record_watchdog_metrics(
    delta: DeltaTableStore,
    watchdog: Watchdog,
    counts: pa.Table,
    *,
    evaluated_at: datetime,
    error_at: int,
    run_id: str,
) -> bool:
    """Append one evaluation to the time series, at most once per run and watchdog.

    Returns:
        Whether rows were written (False when this run already recorded them).
    """
    n = counts.num_rows
    rows = pa.table(
        {
            "evaluated_at": pa.array([evaluated_at] * n, pa.timestamp("us", tz="UTC")),
            "watchdog": pa.array([watchdog.name] * n, pa.string()),
            "clientid": counts["clientid"].cast(pa.string()),
            "campaignid": counts["campaignid"].cast(pa.string()),
            "flagged": counts["flagged"].cast(pa.int64()),
            "error_at": pa.array([error_at] * n, pa.int64()),
            "run_id": pa.array([run_id] * n, pa.string()),
        },
        schema=WATCHDOG_METRICS_SCHEMA,
    )
    marked = Marked([f"watchdog:{watchdog.name}:{run_id}"], rows)
    return bool(delta.append(WATCHDOG_METRICS, [marked], once=True).applied)


def watchdog_result(
    watchdog: Watchdog, counts: pa.Table, *, limits: WatchdogSettings, now: datetime
) -> dg.AssetCheckResult:
    """Pass below the threshold; at or above it, fail with severity ERROR."""
    total = int(pc.sum(counts["flagged"]).as_py() or 0) if counts.num_rows else 0
    error_at = watchdog.error_at(limits)
    flagged = counts.filter(pc.greater(counts["flagged"], 0)).sort_by(
        [("flagged", "descending"), ("clientid", "ascending"), ("campaignid", "ascending")]
    )
    groups = [
        {"clientid": r["clientid"], "campaignid": r["campaignid"], "count": r["flagged"]}
        for r in flagged.slice(0, METADATA_GROUPS).to_pylist()
    ]
    metadata: dict[str, Any] = {
        "flagged": total,
        "error_at": error_at,
        "error_on": "groups_flagged" if watchdog.by_groups else "flagged",
        "groups_flagged": flagged.num_rows,
        "groups_checked": counts.num_rows,
        "evaluated_at": now.isoformat(timespec="seconds"),
        "by_client_campaign": dg.MetadataValue.json(groups),
    }
    if watchdog.name == "overdue_request_item_plans":
        metadata["limits_days"] = dg.MetadataValue.json(
            {
                **limits.plan_overdue_days,
                "fallback": limits.fallback_plan_overdue_days,
                "any": limits.any_plan_overdue_days,
            }
        )
    return dg.AssetCheckResult(
        asset_key=watchdog.asset,
        check_name=watchdog.name,
        passed=(flagged.num_rows if watchdog.by_groups else total) < error_at,
        severity=dg.AssetCheckSeverity.ERROR,
        description=watchdog.description,
        metadata=metadata,
    )


def build_watchdog_check(
    *, watchdog: Watchdog, settings: ReportingDomain
) -> dg.AssetChecksDefinition:
    """One watchdog as an asset check on the staging table it reads."""
    limits = settings.reporting.watchdogs

    @dg.asset_check(
        asset=watchdog.asset,
        name=watchdog.name,
        description=watchdog.description,
        blocking=False,
    )
    def _watchdog(
        context: dg.AssetCheckExecutionContext, config: AsOfConfig, delta: DeltaTableStore
    ) -> dg.AssetCheckResult:
        now = config.as_of_datetime()
        staging = delta.read_or_none(watchdog.asset.path)
        if staging is None:
            return dg.AssetCheckResult(
                asset_key=watchdog.asset,
                check_name=watchdog.name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{watchdog.asset.to_user_string()} has not been materialised yet",
            )
        counts = evaluate_watchdog(watchdog, staging, limits=limits, now=now)
        record_watchdog_metrics(
            delta,
            watchdog,
            counts,
            evaluated_at=now,
            error_at=watchdog.error_at(limits),
            run_id=context.run.run_id,
        )
        return watchdog_result(watchdog, counts, limits=limits, now=now)

    return _watchdog


def build_defs(settings: ReportingDomain) -> dg.Definitions:
    """Every watchdog check."""
    return dg.Definitions(
        asset_checks=[build_watchdog_check(watchdog=w, settings=settings) for w in WATCHDOGS]
    )
