"""Asset check outcomes by severity, and the watchdogs' counts, from recent runs.

The latest evaluation of each check wins; evaluations are read from the runs that
finished within the lookback (newest first), so a check not run lately drops out
rather than reporting a stale pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from flowehr_pipelines.metrics.assets import metadata_number

MAX_RUNS = 200


def check_metrics(
    instance: Any, *, now: datetime, lookback: timedelta
) -> Iterator[GaugeMetricFamily]:
    import dagster as dg

    records = instance.get_run_records(
        filters=dg.RunsFilter(updated_after=now - lookback), limit=MAX_RUNS
    )
    latest: dict[tuple[str, str], Any] = {}
    for record in records:  # newest first
        run_id = record.dagster_run.run_id
        evaluations = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for entry in reversed(evaluations):  # a run's last evaluation of a check wins
            event = entry.dagster_event
            evaluation = event.event_specific_data if event is not None else None
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue
            key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
            latest.setdefault(key, evaluation)

    passed = GaugeMetricFamily(
        "flowehr_asset_check_passed",
        "1 when the check's latest evaluation passed, 0 when it failed.",
        labels=["asset", "check", "severity"],
    )
    flagged = GaugeMetricFamily(
        "flowehr_asset_check_flagged",
        "Rows the check's latest evaluation flagged (the watchdogs' counts).",
        labels=["asset", "check", "severity"],
    )
    outcomes: Counter[tuple[str, str]] = Counter()
    for (asset, check), evaluation in sorted(latest.items()):
        severity = evaluation.severity.value
        passed.add_metric([asset, check, severity], 1.0 if evaluation.passed else 0.0)
        outcomes[(severity, "passed" if evaluation.passed else "failed")] += 1
        count = metadata_number(evaluation.metadata.get("flagged"))
        if count is not None:
            flagged.add_metric([asset, check, severity], count)
    summary = GaugeMetricFamily(
        "flowehr_asset_checks",
        "Checks by severity and the outcome of their latest evaluation.",
        labels=["severity", "outcome"],
    )
    for severity in ("ERROR", "WARN"):
        for outcome in ("passed", "failed"):
            summary.add_metric([severity, outcome], outcomes[(severity, outcome)])
    yield from (passed, flagged, summary)
