"""Run outcomes by job: what is queued or running now, and what finished lately."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily

IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def run_metrics(
    instance: Any, *, now: datetime, lookback: timedelta
) -> Iterator[GaugeMetricFamily]:
    """Gauges of run counts by job and status, the last finish per job and the queue's age.

    Args:
        instance: the Dagster instance.
        now: the scrape's time.
        lookback: how far back finished runs count (the instance keeps every run).
    """
    import dagster as dg

    statuses = [dg.DagsterRunStatus(s) for s in IN_PROGRESS]
    active = instance.get_run_records(filters=dg.RunsFilter(statuses=statuses))
    in_progress = GaugeMetricFamily(
        "flowehr_runs_in_progress",
        "Runs queued, starting, running or canceling now, by job and status.",
        labels=["job", "status"],
    )
    for (job, status), count in sorted(_count(active).items()):
        in_progress.add_metric([job, status], count)
    yield in_progress

    oldest = min((r.create_timestamp for r in active if _status(r) == "QUEUED"), default=None)
    queued_age = GaugeMetricFamily(
        "flowehr_oldest_queued_run_age_seconds",
        "Age of the oldest queued run (0 when none is queued): a stopped daemon shows here.",
    )
    queued_age.add_metric([], (now - oldest.astimezone(UTC)).total_seconds() if oldest else 0.0)
    yield queued_age

    finished = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus(s) for s in FINISHED], updated_after=now - lookback
        )
    )
    recent = GaugeMetricFamily(
        "flowehr_runs_finished",
        f"Runs that finished within the lookback ({lookback.total_seconds():.0f} s), "
        "by job and outcome.",
        labels=["job", "status"],
    )
    for (job, status), count in sorted(_count(finished).items()):
        recent.add_metric([job, status], count)
    yield recent

    last = GaugeMetricFamily(
        "flowehr_run_last_finished_timestamp_seconds",
        "When each job last finished with each outcome (within the lookback), Unix time.",
        labels=["job", "status"],
    )
    latest: dict[tuple[str, str], float] = {}
    for record in finished:
        ended = record.end_time or record.update_timestamp.timestamp()
        key = (record.dagster_run.job_name, _status(record))
        latest[key] = max(latest.get(key, 0.0), float(ended))
    for (job, status), seconds in sorted(latest.items()):
        last.add_metric([job, status], seconds)
    yield last


def _status(record: Any) -> str:
    return str(record.dagster_run.status.value)


def _count(records: Any) -> Counter[tuple[str, str]]:
    return Counter((record.dagster_run.job_name, _status(record)) for record in records)
