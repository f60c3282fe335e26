"""Report files: object keys, CSV bytes, the rows a report reads, and writes that never change
a file once written.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from assets.reporting.staging import REQUEST_ITEM_PLAN_STATUS, REQUEST_ITEM_STATUS
from assets.reports.report_ids import path_segment
from resources.delta.store import DeltaTableStore, TablePath
from resources.object_store import ObjectStore
from transforms.reporting import load_sql, run_query, run_sql
from transforms.reporting.spreadsheet_safety import neutralise_formulas
from transforms.reporting.views import RIPS, RIS, VIEWS_BY_NAME, ViewParameters
from transforms.reporting.views.compute import compute_view

# A SQL name: the columns a report reads are the words of its SQL that name one.
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TERMINAL_ITEM_STATUSES = ("DELIVERED", "FAILED")
TERMINAL_PLAN_STATUSES = ("DELIVERED", "FAILED", "SKIPPED")
COMPLETED_COMMS_VIEW = "completed_comms"
# An as-of date whose 90-day created window starts at the first day there is: a batch
# with no completion time to date it is read whole.
UNWINDOWED = date.min + timedelta(days=90)


def _unfinished_requests(rows: pa.Table, final: Sequence[str]) -> set[str]:
    """Requests with a row whose status is not final (or missing)."""
    done = pc.fill_null(pc.is_in(rows["status"], pa.array(final, pa.string())), False)
    return set(rows.filter(pc.invert(done))["requestid"].to_pylist())


def completed_comms_report_key(client_id: str, report_date: date) -> str:
    """Object key of one client's report for one day (docs/CONTRACTS.md §3)."""
    day = report_date.isoformat()
    client = path_segment(client_id)
    return (
        f"reports/completed_comms_report/{client}/{day}/completed_comms_report_{client}_{day}.csv"
    )


def completed_batch_report_key(
    client_id: str | None, request_id: str, request_ref_id: str | None
) -> str:
    """Object key of one batch's report (docs/CONTRACTS.md §3)."""
    client, request = path_segment(client_id), path_segment(request_id)
    ref = path_segment(request_ref_id)
    return (
        f"reports/completed_batch_report/{client}/{request}/{ref}/completed_batch_report_{ref}.csv"
    )


def to_csv_bytes(data: pa.Table) -> bytes:
    """A report's CSV, its formula-like text cells made inert (``neutralise_formulas``)."""
    sink = io.BytesIO()
    pa_csv.write_csv(neutralise_formulas(data), sink)
    return sink.getvalue()


def _verify_written(objects: ObjectStore, keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if not objects.exists(k)]
    if missing:
        raise dg.Failure(
            description=f"{len(missing)} {what} report(s) missing after writing",
            metadata={"missing": dg.MetadataValue.json(missing)},
        )


def _completed_comms(items: pa.Table, plans: pa.Table, as_of: date) -> pa.Table:
    """NHS Notify's completed_comms view over these items and plans, as of a date.

    A report uses the view as NHS Notify's scheduled run would have seen it: as of the
    day after the report's last day, so that its 90-day created window depends on the
    report, not on when a catch-up run happens to write it.
    """
    return compute_view(
        VIEWS_BY_NAME[COMPLETED_COMMS_VIEW], {RIS: items, RIPS: plans}, ViewParameters(as_of)
    )


def _day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants where a calendar day in ``tz`` starts and ends."""
    start = datetime.combine(day, time.min, ZoneInfo(tz))
    end = datetime.combine(day + timedelta(days=1), time.min, ZoneInfo(tz))
    return start.astimezone(UTC), end.astimezone(UTC)


def completed_comms_rows(
    *, items: pa.Table, plans: pa.Table, report_date: date, timezone: str
) -> pa.Table:
    """Every client's completed comms report rows for one day (with ``clientid``).

    Args:
        items: request_item_status rows, at least the items of the day's plans and the
            FAILED items completed that day.
        plans: request_item_plan_status rows of those items.
        report_date: the day, in ``timezone``.
        timezone: the reporting time zone (``reporting.timezone``).
    """
    start, end = _day_bounds(report_date, timezone)
    view = _completed_comms(items, plans, report_date + timedelta(days=1))
    return run_sql(
        "completed_comms_report", {COMPLETED_COMMS_VIEW: view}, {"day_start": start, "day_end": end}
    )


@dataclass
class CommsWrites:
    """What writing one day's comms reports did, by object key."""

    written: list[str]
    existing: list[str]
    revised: list[str]  # corrected versions written because the day's data changed


def revision_key(key: str, version: int) -> str:
    """The key of a report's corrected version: ``<name>_v<version>.csv`` beside it."""
    return f"{key.removesuffix('.csv')}_v{version}.csv"


def latest_version(objects: ObjectStore, key: str) -> tuple[str, int]:
    """The newest version of a written report (the original is version 1)."""
    version = 1
    while objects.exists(revision_key(key, version + 1)):
        version += 1
    return (key if version == 1 else revision_key(key, version)), version


def write_completed_comms_reports(
    *,
    rows: pa.Table,
    clients: list[str],
    report_date: date,
    objects: ObjectStore,
) -> CommsWrites:
    """Write each client's report for a day; a written one is never rewritten.

    When a written report's rows have changed since (CDC files for the day that landed
    after it was written), the corrected report is written beside it as the next
    version (``revision_key``), and listed as revised so that a check says so.

    Args:
        rows: the day's ``completed_comms_rows``.

    Raises:
        dagster.Failure: when a report is absent after writing.
    """
    writes = CommsWrites([], [], [])
    for client_id in clients:
        key = completed_comms_report_key(client_id, report_date)
        client_rows = rows.filter(pc.equal(rows["clientid"], client_id)).drop_columns(["clientid"])
        data = to_csv_bytes(client_rows)
        if not objects.exists(key):
            objects.write_bytes(key, data)
            writes.written.append(key)
            continue
        latest, version = latest_version(objects, key)
        if objects.read_bytes(latest) == data:
            writes.existing.append(key)
            continue
        corrected = revision_key(key, version + 1)
        objects.write_bytes(corrected, data)
        writes.revised.append(corrected)
    _verify_written(
        objects, [*writes.written, *writes.existing, *writes.revised], "completed comms"
    )
    return writes


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
    rows = completed_batch_rows(items, plans)
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


def completed_batch_rows(items: pa.Table, plans: pa.Table) -> pa.Table:
    """The batch reports' rows: the completed_comms view of each batch, as it stands
    (NHS Notify's batch report selects the view's columns in the view's order).

    Each batch is read as of the day after its last completion, as NHS Notify's run of
    that batch's report would have been, so a catch-up writes the same file.
    """
    last = run_query(
        "SELECT requestid, CAST(MAX(t) AS DATE) + 1 AS as_of FROM ("
        " SELECT requestid, completedtime AS t FROM items UNION ALL"
        " SELECT requestid, completedtime AS t FROM plans) GROUP BY requestid",
        {
            "items": items.select(["requestid", "completedtime"]),
            "plans": plans.select(["requestid", "completedtime"]),
        },
        {},
    )
    by_day: dict[date, list[str]] = defaultdict(list)
    for request_id, as_of in zip(
        last["requestid"].to_pylist(), last["as_of"].to_pylist(), strict=True
    ):
        by_day[as_of or UNWINDOWED].append(request_id)
    parts = [
        _completed_comms(
            items.filter(pc.is_in(items["requestid"], pa.array(request_ids, pa.string()))),
            plans.filter(pc.is_in(plans["requestid"], pa.array(request_ids, pa.string()))),
            as_of,
        )
        for as_of, request_ids in sorted(by_day.items())
    ]
    return pa.concat_tables(parts) if parts else _completed_comms(items, plans, UNWINDOWED)


def report_columns(*sql_names: str, also: Sequence[str] = ()) -> set[str]:
    """Every name the reports' SQL could use (each word of it), and those the code uses."""
    texts = [load_sql(n) for n in sql_names] + [VIEWS_BY_NAME[COMPLETED_COMMS_VIEW].sql()]
    return {w for text in texts for w in _WORD.findall(text)} | set(also)


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


def read_comms_inputs(
    delta: DeltaTableStore, days: Sequence[date], *, columns: set[str]
) -> tuple[pa.Table, pa.Table] | None:
    """The items and plans the comms reports of these days read; None before both exist.

    The plans completed on the days (and a day either side, should ``completeddate`` have been
    written under another ``reporting.timezone``) and the items completed
    on them, then every item of those plans and every plan of the FAILED items: a plan's
    item can complete the next day, and a FAILED item is reported without plans only
    when it has none at all.
    """
    items_table, plans_table = REQUEST_ITEM_STATUS.path, REQUEST_ITEM_PLAN_STATUS.path
    if not (delta.exists(items_table) and delta.exists(plans_table)):
        return None
    columns = columns | {"requestitemid", "completeddate", "status"}
    near = sorted({d + timedelta(days=k) for d in days for k in (-1, 0, 1)})
    plans = read_rows_in(delta, plans_table, "completeddate", near, columns=columns)
    items = read_rows_in(delta, items_table, "completeddate", near, columns=columns)
    assert plans is not None and items is not None
    item_ids = set(items["requestitemid"].to_pylist())
    more_items = set(plans["requestitemid"].to_pylist()) - item_ids
    failed = items.filter(pc.fill_null(pc.equal(items["status"], "FAILED"), False))
    more_plans = set(failed["requestitemid"].to_pylist()) - set(plans["requestitemid"].to_pylist())
    if more_items:
        extra = read_rows_in(
            delta, items_table, "requestitemid", sorted(more_items), columns=columns
        )
        assert extra is not None
        items = pa.concat_tables([items, extra.cast(items.schema)])
    if more_plans:
        extra = read_rows_in(
            delta, plans_table, "requestitemid", sorted(more_plans), columns=columns
        )
        assert extra is not None
        plans = pa.concat_tables([plans, extra.cast(plans.schema)])
    return items, plans


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
