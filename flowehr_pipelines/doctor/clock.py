"""The clock agrees with the servers it talks to, and the schedules' time zone is known.

S3 refuses requests signed more than 15 minutes off, and schedules and freshness
windows are reckoned from this clock, so a skew is worth failing on well before that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowehr_pipelines.doctor.findings import Finding, fail, ok

MAX_SKEW_SECONDS = 60.0


def check_clock(readings: Sequence[tuple[str, datetime]], *, now: datetime) -> Finding:
    """Compare this host's UTC time with every server time seen during the checks.

    Args:
        readings: (server, its time) pairs; HTTP dates have one-second resolution.
        now: this host's time when the readings were taken.
    """
    check = "clock"
    local = f"host time zone {time.strftime('%Z')}; runs use UTC and the schedules' zone"
    if not readings:
        return ok(check, f"UTC {now:%Y-%m-%d %H:%M:%S} (no server to compare with); {local}")
    skews = {name: (now - server.astimezone(UTC)).total_seconds() for name, server in readings}
    name, worst = max(skews.items(), key=lambda item: abs(item[1]))
    if abs(worst) > MAX_SKEW_SECONDS:
        return fail(
            check,
            f"{abs(worst):.0f}s {'ahead of' if worst > 0 else 'behind'} {name}: "
            "synchronise it (NTP)",
        )
    return ok(check, f"within {MAX_SKEW_SECONDS:.0f}s of {', '.join(skews)}; {local}")


def check_timezone(zone: str) -> Finding:
    """The schedules' time zone is in this host's time zone database."""
    check = "time zone"
    try:
        info = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return fail(check, f"'{zone}' is not in the time zone database (install tzdata)")
    offset = datetime.now(info).strftime("%Z, UTC%z")
    return ok(check, f"schedules run in {zone} (now {offset})")
