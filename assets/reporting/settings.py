"""Settings of the reporting domain: windows, calendar, report cadence, watchdog rules,
housekeeping.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Protocol

from pydantic import Field

from assets.governance.settings import GovernanceDomain
from resources.settings import StrictSettings


class WatchdogSettings(StrictSettings):
    """When a communication counts as overdue or stuck (NHS Notify's watchdog rules).

    Limits are whole days counted back from midnight (UTC) of the evaluation day, as
    NHS Notify's ``DATE_ADD('day', -n, CURRENT_DATE)``: a plan created at 23:00 four
    days before today's midnight is overdue at 00:00, not at 23:00. A request item plan
    is overdue when it has no final status past ``plan_overdue_days`` of its channel
    (first channel tried, ``ordernumber`` 1), ``fallback_plan_overdue_days`` (the second
    channel, ``ordernumber`` 2) or ``any_plan_overdue_days`` (any plan at all).
    """

    plan_overdue_days: dict[str, int] = Field(
        default_factory=lambda: {"NHSAPP": 4, "SMS": 4, "EMAIL": 4, "LETTER": 7},
        description="Per channel (communicationtype), for the first channel of an item.",
    )
    fallback_plan_overdue_days: int = Field(default=10, gt=0)
    any_plan_overdue_days: int = Field(default=14, gt=0)
    item_overdue_days: int = Field(default=14, gt=0)
    request_overdue_days: int = Field(default=14, gt=0)
    stuck_pending_enrichment_days: int = Field(default=2, gt=0)
    stuck_enriched_days: int = Field(default=6, gt=0)
    lookback_days: int = Field(default=90, gt=0, description="Older communications are ignored.")
    error_at: int = Field(
        default=1, gt=0, description="A watchdog fails with severity ERROR at this many."
    )
    degraded_latency_factor: float = Field(
        default=2.0,
        gt=0,
        description="A group's latency is degraded when today's median exceeds this many "
        "times the 95th percentile of the month before.",
    )
    degraded_latency_error_at_groups: int = Field(
        default=2,
        gt=0,
        description="degraded_latency fails with severity ERROR when this many client and "
        "campaign pairs are degraded at once (NHS Notify's alarm: several at the same time).",
    )


class ReportingSettings(StrictSettings):
    """Windows and calendar of the reporting domain."""

    projection_window_days: int = Field(
        default=7,
        gt=0,
        description="Projections read the files landed on or after this many days before "
        "today (UTC): today and the 7 days before, as NHS Notify's one-week window.",
    )
    aggregation_window_months: int = Field(
        default=1,
        gt=0,
        description="Summaries regroup the rows created on or after this many calendar "
        "months before today (UTC), as NHS Notify's DATE_ADD('month', -1, CURRENT_DATE).",
    )
    aggregation_window_days: int | None = Field(
        default=None,
        gt=0,
        description="A window of this many days instead of aggregation_window_months.",
    )
    initial_window_days: int = Field(
        default=90,
        gt=0,
        description="Window of a staging table's first (migration) load, before it exists.",
    )
    timezone: str = "Europe/London"
    nhsnumber_hash: Literal["hmac", "nhs_notify"] = Field(
        default="hmac",
        description="How nhsnumberhash is made: HMAC-SHA256 hex (default), or NHS Notify's "
        "base64(sha256(key || '.' || nhsnumber)) so pseudonyms join with tables it made.",
    )
    clients: list[str] = Field(default_factory=list, description="Empty = every client seen.")
    batch_client_ids: list[str] = Field(
        default_factory=list,
        description="Clients whose summaries are also kept per batch (request), in the "
        "_batch tables; empty = none, as NHS Notify's default; '*' = every client.",
    )
    landing_sensor_interval_seconds: int = Field(
        default=60, gt=0, description="How often the landing sensor lists new CDC files."
    )
    report_catch_up_days: int = Field(
        default=7, gt=0, description="How far back a missing completed comms report is rewritten."
    )
    report_revision_days: int = Field(
        default=2,
        gt=0,
        description="The comms reports of this many days, ending yesterday, are re-checked on "
        "every run: when CDC records landed late changed a written day, a corrected version "
        "is written beside the report (never over it) and a check warns.",
    )
    batch_report_lookback_days: int = Field(
        default=7, gt=0, description="Batches completed this recently get a batch report."
    )
    batch_settle_minutes: int = Field(
        default=120,
        ge=0,
        description="A batch is reported only this long after its last item completed.",
    )
    automation_running: bool = Field(
        default=False,
        description="Start the reporting schedules and landing sensor with the daemon "
        "(otherwise they are switched on in the UI).",
    )
    reports_start_date: date = Field(
        default=date(2024, 1, 1), description="First day of the daily report partitions."
    )
    watchdogs: WatchdogSettings = WatchdogSettings()
    sms_nudge_client_id: str | None = Field(
        default=None,
        description="Client id of the SMS Nudge umbrella client: the smsnudge views show its "
        "items and plans, and billing_transactions bills them to the messages they nudge "
        "about. None = no such client, as NHS Notify's default ('NULL', which names none).",
    )
    email_filter_client_ids: list[str] = Field(
        default_factory=list,
        description="Clients whose email-only sending groups are hidden in the view "
        "request_item_status_summary_all_email_filter; empty = none, as NHS Notify's default.",
    )


class HousekeepingSettings(StrictSettings):
    """OPTIMIZE and VACUUM of the published tables."""

    vacuum_retention_hours: int = Field(default=168, ge=0)
    feature_history_days: int = Field(
        default=90,
        gt=0,
        description="Feature tables keep superseded files and log entries this long, so a "
        "training-set manifest can be rebuilt for at least this long after it was made.",
    )


class ReportingDomain(GovernanceDomain, Protocol):
    """What the reporting domain reads of a deployment's settings (governance: the
    disclosure control of the views that count recipients)."""

    @property
    def reporting(self) -> ReportingSettings: ...


class ReportsDomain(ReportingDomain, Protocol):
    """What the report assets read: the reporting settings and where the lake is."""

    @property
    def lake_is_s3(self) -> bool: ...
