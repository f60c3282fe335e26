"""Which report partitions are due: the run requests the report schedules and flowehr run make."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from assets.reporting.settings import ReportingDomain
from assets.reporting.staging import REQUEST_ITEM_PLAN_STATUS, REQUEST_ITEM_STATUS
from assets.reports.partitions import (
    BATCH_PARTITIONS,
    BATCH_RANGE_MAX_GAP,
    CLIENT_PARTITIONS,
    COMPLETED_COMMS_REPORT,
    RANGE_END_TAG,
    RANGE_START_TAG,
    comms_partition_key,
    contiguous_ranges,
    parse_comms_partition_key,
    register_partitions,
    report_clients,
)
from assets.reports.report_ids import partition_key_problem
from assets.reports.writing import Batch, completed_comms_report_key
from resources.delta.store import DeltaTableStore
from resources.object_store import ObjectStore
from transforms.reporting import run_sql
from transforms.reporting.calendar import local_yesterday
from transforms.reporting.dictionary import REPORTING_COLUMNS, arrow_schema


def _end_of_local_day(day: date, tz: str) -> datetime:
    midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(tz))
    return midnight.astimezone(UTC)


def _last_refresh(instance: dg.DagsterInstance, key: dg.AssetKey) -> datetime | None:
    event = instance.get_latest_materialization_event(key)
    return None if event is None else datetime.fromtimestamp(event.timestamp, tz=UTC)


def _first_window_start(instance: dg.DagsterInstance, key: dg.AssetKey) -> datetime | None:
    """Where a projection's coverage begins: the window start of its first materialisation."""
    records = instance.fetch_materializations(key, limit=1, ascending=True).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("window_start")
    text = getattr(value, "value", value)
    if not isinstance(text, str):
        return None
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)


@dataclass(frozen=True)
class ReportPlan:
    """The runs a report schedule (or ``flowehr run``) should launch now."""

    job_name: str
    run_requests: list[dg.RunRequest]
    skipped: list[str]


def _range_request(job_name: str, run_key: str, start: str, end: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        job_name=job_name,
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end, "flowehr/report_catch_up": "true"},
    )


def plan_comms_reports(
    *,
    job_name: str,
    settings: ReportingDomain,
    instance: dg.DagsterInstance,
    delta: DeltaTableStore,
    objects: ObjectStore,
    now: datetime,
) -> ReportPlan:
    """The reports of the last ``report_revision_days`` days for every client (re-checked
    against their data), plus any expected earlier one that is missing.

    Expected earlier reports are those of the days since the report series began (its
    first materialised partition), within ``report_catch_up_days``. A day is reported
    only once ``request_item_status`` has been refreshed after that day ended, so a
    report never misses completions that had not been ingested yet.
    """
    reporting = settings.reporting
    clients = report_clients(settings, delta)
    register_partitions(instance, CLIENT_PARTITIONS, clients)
    if not clients:
        return ReportPlan(job_name, [], ["no clients known yet"])
    assert CLIENT_PARTITIONS.name is not None
    ordered = instance.get_dynamic_partitions(CLIENT_PARTITIONS.name)
    yesterday = local_yesterday(reporting.timezone, now)
    earliest = max(
        yesterday - timedelta(days=reporting.report_catch_up_days - 1),
        reporting.reports_start_date,
    )
    started = [
        parse_comms_partition_key(k)[1]
        for k in instance.get_materialized_partitions(COMPLETED_COMMS_REPORT)
    ]
    first = max(min(started), earliest) if started else yesterday
    refreshed = _last_refresh(instance, REQUEST_ITEM_STATUS)
    requests: list[dg.RunRequest] = []
    skipped: list[str] = []
    day = first
    while day <= yesterday:
        if refreshed is None or refreshed < _end_of_local_day(day, reporting.timezone):
            skipped.append(f"{day}: request_item_status not refreshed since the day ended")
        else:
            # Recent days are asked again whole: a late change gets a corrected version.
            due = (
                set(clients)
                if day > yesterday - timedelta(days=reporting.report_revision_days)
                else {c for c in clients if not objects.exists(completed_comms_report_key(c, day))}
            )
            for start, end in contiguous_ranges(ordered, due):
                requests.append(
                    _range_request(
                        job_name,
                        f"comms:{day}:{start}..{end}",
                        str(comms_partition_key(start, day)),
                        str(comms_partition_key(end, day)),
                    )
                )
        day += timedelta(days=1)
    return ReportPlan(job_name, requests, skipped)


def completed_batches(
    *,
    settings: ReportingDomain,
    instance: dg.DagsterInstance,
    delta: DeltaTableStore,
    now: datetime,
) -> list[Batch]:
    """Batches whose items and plans all finished, settled and within the lookback."""
    reporting = settings.reporting
    coverage = _first_window_start(instance, REQUEST_ITEM_STATUS)
    items = delta.read_or_none(
        REQUEST_ITEM_STATUS.path,
        columns=[
            "clientid",
            "requestid",
            "requestitemid",
            "requestrefid",
            "status",
            "createdtime",
            "completedtime",
        ],
    )
    plans = delta.read_or_none(
        REQUEST_ITEM_PLAN_STATUS.path,
        columns=["clientid", "requestitemid", "status", "completedtime"],
    )
    if coverage is None or items is None:
        return []
    if plans is None:  # no plan yet: every item failed before sending, or none started
        plans = arrow_schema(REPORTING_COLUMNS[REQUEST_ITEM_PLAN_STATUS.path[-1]]).empty_table()
    found = run_sql(
        "completed_batches",
        {"request_item_status": items, "request_item_plan_status": plans},
        {
            "completed_since": now - timedelta(days=reporting.batch_report_lookback_days),
            "settled_before": now - timedelta(minutes=reporting.batch_settle_minutes),
            "created_since": coverage,
        },
    )
    return [
        Batch(r["clientid"], r["requestid"], r["requestrefid"] or "")
        for r in found.to_pylist()
        if partition_key_problem(r["requestid"]) is None  # see unusable_report_ids
    ]


def plan_batch_reports(
    *,
    job_name: str,
    settings: ReportingDomain,
    instance: dg.DagsterInstance,
    delta: DeltaTableStore,
    objects: ObjectStore,
    now: datetime,
) -> ReportPlan:
    """A report for every recently completed batch that has none yet."""
    batches = completed_batches(settings=settings, instance=instance, delta=delta, now=now)
    register_partitions(instance, BATCH_PARTITIONS, [b.requestid for b in batches])
    due = {b.requestid for b in batches if not objects.exists(b.report_key)}
    if not due:
        return ReportPlan(job_name, [], [f"{len(batches)} completed batch(es), all reported"])
    assert BATCH_PARTITIONS.name is not None
    ordered = instance.get_dynamic_partitions(BATCH_PARTITIONS.name)
    requests = [
        _range_request(job_name, f"batches:{start}..{end}", start, end)
        for start, end in contiguous_ranges(ordered, due, max_gap=BATCH_RANGE_MAX_GAP)
    ]
    return ReportPlan(job_name, requests, [])
