"""Settings of the reporting domain: windows, calendar, report cadence, watchdog rules,
housekeeping.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Protocol

from pydantic import Field

from resources.settings import StrictSettings


class WatchdogSettings(StrictSettings):
    """When a communication counts as overdue or stuck (NHS Notify's watchdog rules).

    A request item plan is overdue when it has no final status this many hours after it
    was created: ``plan_overdue_hours`` per channel for the first channel tried,
    ``fallback_plan_overdue_hours`` for a later (fallback) channel, and
    ``any_plan_overdue_hours`` for any plan at all.
    """

    plan_overdue_hours: dict[str, int] = Field(
        default_factory=lambda: {"NHSAPP": 96, "SMS": 96, "EMAIL": 96, "LETTER": 168},
        description="Per channel (communicationtype), for the first channel of an item.",
    )
    fallback_plan_overdue_hours: int = Field(default=240, gt=0)
    any_plan_overdue_hours: int = Field(default=336, gt=0)
    item_overdue_hours: int = Field(default=336, gt=0)
    request_overdue_hours: int = Field(default=336, gt=0)
    stuck_pending_enrichment_hours: int = Field(default=48, gt=0)
    stuck_enriched_hours: int = Field(default=144, gt=0)
    lookback_days: int = Field(default=90, gt=0, description="Older communications are ignored.")
    error_at: int = Field(
        default=1, gt=0, description="A watchdog fails with severity ERROR at this many."
    )


class ReportingSettings(StrictSettings):
    """Windows and calendar of the reporting domain."""

    projection_window_days: int = Field(default=7, gt=0)
    aggregation_window_days: int = Field(default=31, gt=0)
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


class HousekeepingSettings(StrictSettings):
    """OPTIMIZE and VACUUM of staging tables."""

    vacuum_retention_hours: int = Field(default=168, ge=0)


class ReportingDomain(Protocol):
    """What the reporting domain reads of a deployment's settings."""

    @property
    def reporting(self) -> ReportingSettings: ...


class ReportsDomain(ReportingDomain, Protocol):
    """What the report assets read: the reporting settings and where the lake is."""

    @property
    def lake_is_s3(self) -> bool: ...
