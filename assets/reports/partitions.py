"""Report asset keys and partitions: client x day for the comms report, one per batch for the
batch report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import dagster as dg

from assets.reporting.settings import ReportingDomain
from assets.reporting.staging import (
    CLIENT_LATEST_NAME,
    REQUEST_ITEM_STATUS,
)
from assets.reports.report_ids import partition_key_problem
from resources.delta.store import DeltaTableStore

COMPLETED_COMMS_REPORT = dg.AssetKey(["reports", "completed_comms_report"])

COMPLETED_BATCH_REPORT = dg.AssetKey(["reports", "completed_batch_report"])

CLIENT_PARTITIONS = dg.DynamicPartitionsDefinition(name="reporting_clients")

BATCH_PARTITIONS = dg.DynamicPartitionsDefinition(name="completed_batches")


# Dagster's tags for a run over a partition range (a single-run backfill).
RANGE_START_TAG = "dagster/asset_partition_range_start"

RANGE_END_TAG = "dagster/asset_partition_range_end"


# Consecutive batch partitions with a report already are folded into one run's range
# (the asset skips them) rather than splitting the catch-up into many runs.
BATCH_RANGE_MAX_GAP = 50


def comms_partitions_def(settings: ReportingDomain) -> dg.MultiPartitionsDefinition:
    """Client x completion date (Europe/London days)."""
    return dg.MultiPartitionsDefinition(
        {
            "client": CLIENT_PARTITIONS,
            "date": dg.DailyPartitionsDefinition(
                start_date=settings.reporting.reports_start_date.isoformat(),
                timezone=settings.reporting.timezone,
            ),
        }
    )


def comms_partition_key(client_id: str, day: date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"client": client_id, "date": day.isoformat()})


def parse_comms_partition_key(key: str) -> tuple[str, date]:
    """(client, day) of a comms report partition key such as ``<client>|2026-11-20``."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["client"], date.fromisoformat(dims["date"])
    client_id, _, day = str(key).rpartition("|")
    return client_id, date.fromisoformat(day)


def known_clients(settings: ReportingDomain, delta: DeltaTableStore) -> list[str]:
    """Clients due a daily report: from config, else every client the staging knows."""
    if settings.reporting.clients:
        return list(settings.reporting.clients)
    seen: set[str] = set()
    for key in (CLIENT_LATEST_NAME, REQUEST_ITEM_STATUS):
        table = delta.read_or_none(key.path, columns=["clientid"])
        if table is not None:
            seen.update(c for c in table["clientid"].to_pylist() if c)
    return sorted(seen)


def report_clients(settings: ReportingDomain, delta: DeltaTableStore) -> list[str]:
    """The known clients whose id can be a partition key (the others: unusable_report_ids)."""
    return [
        c
        for c in known_clients(settings, delta)
        if partition_key_problem(c, dimension=True) is None
    ]


def register_partitions(
    instance: dg.DagsterInstance, partitions: dg.DynamicPartitionsDefinition, keys: Sequence[str]
) -> list[str]:
    """Add dynamic partitions not yet known; returns the ones added."""
    assert partitions.name is not None
    known = set(instance.get_dynamic_partitions(partitions.name))
    new = [k for k in dict.fromkeys(keys) if k not in known]
    if new:
        instance.add_dynamic_partitions(partitions.name, new)
    return new


def contiguous_ranges(
    ordered: Sequence[str], wanted: set[str], *, max_gap: int = 0
) -> list[tuple[str, str]]:
    """The fewest (first, last) ranges of ``ordered`` covering ``wanted``.

    Up to ``max_gap`` unwanted keys between two wanted ones are folded into a range.
    """
    ranges: list[tuple[str, str]] = []
    start: str | None = None
    last: str | None = None
    gap = 0
    for key in ordered:
        if key in wanted:
            if start is None:
                start = key
            last, gap = key, 0
        elif start is not None:
            gap += 1
            if gap > max_gap:
                assert last is not None
                ranges.append((start, last))
                start, last, gap = None, None, 0
    if start is not None and last is not None:
        ranges.append((start, last))
    return ranges
