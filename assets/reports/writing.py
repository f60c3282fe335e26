"""Report files: object keys, CSV bytes, the rows a report reads, and writes that never change
a file once written.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from resources.delta.store import DeltaTableStore, TablePath
from resources.object_store import ObjectStore
from transforms.reporting import load_sql, run_sql

# A SQL name: the columns a report reads are the words of its SQL that name one.
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TERMINAL_ITEM_STATUSES = ("DELIVERED", "FAILED")
TERMINAL_PLAN_STATUSES = ("DELIVERED", "FAILED", "SKIPPED")


def _unfinished_requests(rows: pa.Table, final: Sequence[str]) -> set[str]:
    """Requests with a row whose status is not final (or missing)."""
    done = pc.fill_null(pc.is_in(rows["status"], pa.array(final, pa.string())), False)
    return set(rows.filter(pc.invert(done))["requestid"].to_pylist())


def _segment(value: str) -> str:
    """A path segment from a client-supplied id: never a separator or a dot-name."""
    if value in ("", ".", ".."):
        raise ValueError(f"{value!r} cannot be part of a report path")
    return quote(value, safe="-_.")


def completed_comms_report_key(client_id: str, report_date: date) -> str:
    """Object key of one client's report for one day (docs/CONTRACTS.md §3)."""
    day = report_date.isoformat()
    client = _segment(client_id)
    return (
        f"reports/completed_comms_report/{client}/{day}/completed_comms_report_{client}_{day}.csv"
    )


def completed_batch_report_key(client_id: str, request_id: str, request_ref_id: str) -> str:
    """Object key of one batch's report (docs/CONTRACTS.md §3)."""
    client, request, ref = _segment(client_id), _segment(request_id), _segment(request_ref_id)
    return (
        f"reports/completed_batch_report/{client}/{request}/{ref}/completed_batch_report_{ref}.csv"
    )


def to_csv_bytes(data: pa.Table) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(data, sink)
    return sink.getvalue()


def _verify_written(objects: ObjectStore, keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if not objects.exists(k)]
    if missing:
        raise dg.Failure(
            description=f"{len(missing)} {what} report(s) missing after writing",
            metadata={"missing": dg.MetadataValue.json(missing)},
        )


def write_completed_comms_reports(
    *,
    items: pa.Table,
    clients: list[str],
    report_date: date,
    objects: ObjectStore,
) -> tuple[list[str], list[str]]:
    """Write each client's report for a day unless it already exists.

    Returns:
        Keys written, and keys that already existed.

    Raises:
        dagster.Failure: when a report is absent after writing.
    """
    rows = run_sql(
        "completed_comms_report", {"request_item_status": items}, {"report_date": report_date}
    )
    written, existing = [], []
    for client_id in clients:
        key = completed_comms_report_key(client_id, report_date)
        if objects.exists(key):
            existing.append(key)
            continue
        client_rows = rows.filter(pc.equal(rows["clientid"], client_id)).drop_columns(["clientid"])
        objects.write_bytes(key, to_csv_bytes(client_rows))
        written.append(key)
    _verify_written(objects, [*written, *existing], "completed comms")
    return written, existing


@dataclass(frozen=True)
class Batch:
    """One request (batch) of a client, as its report path needs it."""

    clientid: str
    requestid: str
    requestrefid: str

    @property
    def report_key(self) -> str:
        return completed_batch_report_key(self.clientid, self.requestid, self.requestrefid)


def write_completed_batch_reports(
    *, request_ids: Sequence[str], items: pa.Table, plans: pa.Table, objects: ObjectStore
) -> tuple[list[str], list[str]]:
    """Write the report of each completed batch unless it already exists.

    Args:
        request_ids: the batches (partition keys) to report.
        items: request_item_status rows of those batches.
        plans: request_item_plan_status rows of those batches.
        objects: where reports go.

    Returns:
        Keys written, and keys that already existed.

    Raises:
        dagster.Failure: when a batch is unknown or unfinished, or a report is absent
            after writing; the run fails rather than writing a wrong report that would
            never be rewritten.
    """
    wanted = set(request_ids)
    items = items.filter(pc.is_in(items["requestid"], pa.array(sorted(wanted), pa.string())))
    unknown = sorted(wanted - set(items["requestid"].to_pylist()))
    # Complete means every item and every plan of them final, as NHS Notify's
    # completed_batches (which joins plans to the batch's items, as the planner does).
    batch_plans = plans.filter(pc.is_in(plans["requestitemid"], items["requestitemid"]))
    unfinished = sorted(
        _unfinished_requests(items, TERMINAL_ITEM_STATUSES)
        | _unfinished_requests(batch_plans, TERMINAL_PLAN_STATUSES)
    )
    if unknown or unfinished:
        raise dg.Failure(
            description=(
                f"cannot report {len(unknown)} unknown and {len(unfinished)} unfinished "
                "batch(es): a batch report is written once, so only for a completed batch"
            ),
            metadata={
                "unknown_requestids": dg.MetadataValue.json(unknown[:50]),
                "unfinished_requestids": dg.MetadataValue.json(unfinished[:50]),
            },
        )
    rows = run_sql(
        "completed_batch_report",
        {"request_item_status": items, "request_item_plan_status": plans},
        {},
    )
    batches = sorted(
        {
            Batch(r["clientid"], r["requestid"], r["requestrefid"] or "")
            for r in items.select(["clientid", "requestid", "requestrefid"]).to_pylist()
        },
        key=lambda b: (b.clientid or "", b.requestid),
    )
    written, existing = [], []
    row_indices = _row_indices_by_batch(rows)
    report_rows = rows.drop_columns(["clientid"])
    for batch in batches:
        key = batch.report_key
        if objects.exists(key):
            existing.append(key)
            continue
        indices = row_indices.get((batch.clientid, batch.requestid), [])
        objects.write_bytes(key, to_csv_bytes(report_rows.take(pa.array(indices, pa.int64()))))
        written.append(key)
    _verify_written(objects, [*written, *existing], "completed batch")
    return written, existing


def report_columns(sql_name: str, *also: str) -> set[str]:
    """Every name a report's SQL could use (each word of it), and those the code uses."""
    return {*_WORD.findall(load_sql(sql_name)), *also}


def read_rows_in(
    delta: DeltaTableStore,
    table: TablePath,
    column: str,
    values: Sequence[Any],
    *,
    columns: set[str] | None = None,
) -> pa.Table | None:
    """A staging table's rows whose ``column`` is one of ``values``; None before it exists.

    Only the ``columns`` a report uses are read, one file at a time, each record batch
    filtered as it is read. A filtered ``delta.read`` of a table a MERGE wrote reads it
    whole, every column, before filtering (pyarrow cannot push a filter onto its
    ``string_view`` files): at bench scale M, 2,967 batch reports held both staging
    tables at once (~1.4 GB).
    """
    if not delta.exists(table):
        return None
    dataset = delta.dataset(table)
    names = [n for n in dataset.schema.names if columns is None or n in columns or n == column]
    field = dataset.schema.field(column)
    text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    text = text or field.type == pa.string_view()
    wanted = pa.array(sorted(set(values)), pa.string() if text else field.type)
    kept = []
    for batch in dataset.to_batches(columns=names, fragment_readahead=1, batch_readahead=1):
        keys = batch.column(column)
        if text and keys.type != pa.string():
            keys = pc.cast(keys, pa.string())
        kept.append(batch.filter(pc.is_in(keys, value_set=wanted)))
    return pa.Table.from_batches(kept, schema=pa.schema([dataset.schema.field(n) for n in names]))


def _row_indices_by_batch(rows: pa.Table) -> dict[tuple[str, str], list[int]]:
    """Each (clientid, requestid)'s row positions in order, from one pass over the rows.

    One scan per batch made the reports quadratic. A null clientid or requestid
    matches no batch, as an equality filter would have it.
    """
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    clients, requests = rows["clientid"].to_pylist(), rows["requestid"].to_pylist()
    for index, (client, request) in enumerate(zip(clients, requests, strict=True)):
        if client is not None and request is not None:
            groups[(client, request)].append(index)
    return groups


def read_report(objects: ObjectStore, key: str) -> pa.Table:
    """A written report, read back from its CSV."""
    return pa_csv.read_csv(io.BytesIO(objects.read_bytes(key)))
