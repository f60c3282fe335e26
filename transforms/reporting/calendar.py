"""Dates as NHS reporting sees them: calendar days in Europe/London."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc


def local_dates(timestamps: pa.ChunkedArray | pa.Array, tz: str) -> pa.ChunkedArray | pa.Array:
    """The local calendar date of each UTC timestamp (nulls stay null)."""
    unit = timestamps.type.unit if pa.types.is_timestamp(timestamps.type) else "ms"
    in_zone = timestamps.cast(pa.timestamp(unit, tz=tz))
    return pc.local_timestamp(in_zone).cast(pa.date32())


def local_today(tz: str, now: datetime | None = None) -> date:
    """Today's date in the reporting time zone."""
    current = now or datetime.now(UTC)
    return current.astimezone(ZoneInfo(tz)).date()


def local_yesterday(tz: str, now: datetime | None = None) -> date:
    return local_today(tz, now) - timedelta(days=1)
