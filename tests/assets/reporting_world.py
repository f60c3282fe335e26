"""A throwaway lake for reporting-domain tests: land CDC files, ingest, project, aggregate.

Tests call the same functions the assets call (``ingest_landing_files``,
``refresh_projection``, ``refresh_aggregation``) on real Delta tables under tmp_path,
with a fixed clock, so each scenario is fast and deterministic.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from assets.reporting.ingestion import LANDING_PREFIX, IngestStats, ingest_landing_files
from assets.reporting.staging import refresh_aggregation, refresh_projection, staging_key
from resources.delta.store import DeltaTableStore
from resources.object_store import ObjectStore
from resources.pseudonymiser import Pseudonymiser
from tests.conftest import TEST_KEY
from tests.lakes import local_objects, local_store
from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS

NOW = datetime(2026, 4, 6, 12, 0, tzinfo=UTC)
LOG: Any = logging.getLogger("reporting-tests")
STAGING_TABLES = [p.table for p in PROJECTIONS] + [a.table for a in AGGREGATIONS]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item(
    item_id: str,
    at: datetime,
    status: str,
    *,
    client: str = "client-a",
    campaign: str | None = "campaign-1",
    request: str = "request-1",
    created: datetime | None = None,
    completed: datetime | None = None,
    nhsnumber: str | None = "9434765919",
    **extra: Any,
) -> dict[str, Any]:
    """A REQUEST_ITEM# change record carrying the item's full state."""
    record: dict[str, Any] = {
        "pk": f"CLIENT#{client}",
        "sk": f"REQUEST_ITEM#{item_id}",
        "timestamp": ms(at),
        "clientid": client,
        "clientname": f"Name of {client}",
        "campaignid": campaign,
        "sendinggroupid": "group-1",
        "sendinggroupidversion": "1",
        "requestid": request,
        "requestrefid": f"ref-{request}",
        "requestitemid": item_id,
        "requestitemrefid": f"ref-{item_id}",
        "nhsnumber": nhsnumber,
        "createddate": iso(created or at),
        "completeddate": iso(completed) if completed else None,
        "status": status,
        "patientodscode": "A12345",
    }
    record.update(extra)
    return record


def plan(
    plan_id: str,
    at: datetime,
    status: str,
    *,
    item_id: str = "item-1",
    channel: str = "SMS",
    order: int = 1,
    created: datetime | None = None,
    completed: datetime | None = None,
    client: str = "client-a",
    campaign: str | None = "campaign-1",
    request: str = "request-1",
    **extra: Any,
) -> dict[str, Any]:
    """A REQUEST_ITEM_PLAN# change record."""
    record: dict[str, Any] = {
        "pk": f"CLIENT#{client}",
        "sk": f"REQUEST_ITEM_PLAN#{plan_id}",
        "timestamp": ms(at),
        "clientid": client,
        "campaignid": campaign,
        "sendinggroupid": "group-1",
        "sendinggroupidversion": "1",
        "requestid": request,
        "requestrefid": f"ref-{request}",
        "requestitemid": item_id,
        "requestitemrefid": f"ref-{item_id}",
        "requestitemplanid": plan_id,
        "nhsnumber": "9434765919",
        "createddate": iso(created or at),
        "completeddate": iso(completed) if completed else None,
        "status": status,
        "communicationtype": channel,
        "supplier": "NOTIFY",
        "channeltype": "primary" if order == 1 else "secondary",
        "ordernumber": order,
    }
    record.update(extra)
    return record


def client(client_id: str, at: datetime, name: str | None) -> dict[str, Any]:
    """A legacy CLIENT# record: accepted and kept in bronze, read by no staging table."""
    record: dict[str, Any] = {
        "pk": f"CLIENT#{client_id}",
        "sk": f"CLIENT#{client_id}",
        "timestamp": ms(at),
        "clientid": client_id,
        "createddate": "2025-01-01T00:00:00Z",
    }
    if name is not None:
        record["clientname"] = name
    return record


def lines(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r, separators=(",", ":")) for r in records]


@dataclass
class Lake:
    """Delta tables and landing files under one temporary root."""

    root: Path
    delta: DeltaTableStore
    objects: ObjectStore
    pseudonymiser: Pseudonymiser
    batch_client_ids: tuple[str, ...] = ("*",)

    @classmethod
    def at(cls, root: Path) -> Lake:
        root.mkdir(parents=True, exist_ok=True)
        return cls(
            root=root,
            delta=local_store(root),
            objects=local_objects(root),
            pseudonymiser=Pseudonymiser(key=TEST_KEY),
        )

    def land(self, name: str, text_lines: list[str], day: str = "2026/04/01") -> str:
        """Write one landing file (as the feed would: whole, newline-terminated)."""
        year, month, dom = day.split("/")
        key = f"{LANDING_PREFIX}/__year={year}/__month={month}/__day={dom}/{name}.jsonl"
        self.objects.write_bytes(key, "".join(f"{line}\n" for line in text_lines).encode())
        return key

    def ingest(self, now: datetime = NOW) -> IngestStats:
        return ingest_landing_files(objects=self.objects, delta=self.delta, now=now, log=LOG)

    def project(
        self,
        as_of: datetime = NOW,
        window_days: int = 7,
        *,
        initial_window_days: int | None = None,
        hash_identifier: Callable[[str], str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        return {
            spec.table: refresh_projection(
                spec,
                delta=self.delta,
                pseudonymise=self.pseudonymiser.hash_value,
                as_of=as_of,
                window_days=window_days,
                tz="Europe/London",
                initial_window_days=initial_window_days,
                hash_identifier=hash_identifier,
            )
            for spec in PROJECTIONS
        }

    def aggregate(self, as_of: datetime = NOW, window_days: int | None = None) -> dict[str, Any]:
        return {
            spec.table: refresh_aggregation(
                spec,
                delta=self.delta,
                as_of=as_of,
                window_days=window_days,
                batch_client_ids=self.batch_client_ids,
            )
            for spec in AGGREGATIONS
        }

    def cycle(self, as_of: datetime = NOW, window_days: int = 7) -> None:
        """One reporting run: ingest, pass 1, pass 2."""
        self.ingest(max(as_of, NOW))  # records later than the ingestion clock are rejected
        self.project(as_of, window_days)
        self.aggregate(as_of)

    def staging(self, table: str) -> pa.Table:
        return self.delta.read(staging_key(table).path)

    def rows(self, table: str) -> list[dict[str, Any]]:
        data = self.staging(table)
        columns = sorted(data.column_names)
        return sorted(data.select(columns).to_pylist(), key=repr)

    def snapshot(self) -> dict[str, str]:
        """Order-independent digest of every staging table that exists."""
        out = {}
        for table in STAGING_TABLES:
            if self.delta.exists(staging_key(table).path):
                out[table] = hashlib.sha256(repr(self.rows(table)).encode()).hexdigest()
        return out
