"""The run config every reporting step takes: the moment it runs as of.

One config for the staging tables' moving windows and the watchdogs alike, so a past
cycle is replayed by the same ``as_of`` everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg


class AsOfConfig(dg.Config):
    """When the step runs as of (its moving window ends then); default now. Set it to
    replay a past cycle or evaluation."""

    as_of: str | None = None

    def as_of_datetime(self) -> datetime:
        if not self.as_of:
            return datetime.now(UTC)
        parsed = datetime.fromisoformat(self.as_of.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
