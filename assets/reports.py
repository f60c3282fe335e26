"""Canned reports written to object storage as CSV: partitioned assets.

``completed_comms_report`` is partitioned by client (dynamic partitions, registered
from config or from the clients the staging tables know) and by completion date
(daily, Europe/London): one CSV per client and day. ``completed_batch_report`` is
partitioned by batch (dynamic partitions keyed by ``requestid``, registered when a
batch completes): one CSV per completed batch. Paths follow DESIGN section 5.

A report that exists is never rewritten (clients may already have fetched it); a
missing one is written on the next run (the schedules re-request every expected
partition whose file is absent); and a report the run should have written but cannot
(unknown or unfinished batch, file absent after writing) fails the run loudly rather
than leaving a silent gap. Both assets take a whole partition range in one run, so a
catch-up of many partitions is one run, not hundreds.

The planning functions here decide which partitions are due; the schedules and
``flowehr run`` both use them, so what a manual run writes is what the schedule would.

Each materialisation previews the first rows of its reports as Markdown metadata (read
back from the files, at most ``PREVIEW_ROWS``); a new comms report also gets a PNG chart
of its completed communications by channel, ``chart.png`` beside the CSV. Reports hold
only client references and statuses, so the previews carry no patient values.
"""

import io
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from assets.reporting import CLIENT_LATEST_NAME, REQUEST_ITEM_PLAN_STATUS, REQUEST_ITEM_STATUS
from flowehr_pipelines.config import Settings
from resources.delta_store import DeltaTableStore, TablePath
from resources.object_store import ObjectStore
from transforms.reporting import load_sql, run_sql
from transforms.reporting.calendar import local_yesterday

COMPLETED_COMMS_REPORT = dg.AssetKey(["reports", "completed_comms_report"])
COMPLETED_BATCH_REPORT = dg.AssetKey(["reports", "completed_batch_report"])
CLIENT_PARTITIONS = dg.DynamicPartitionsDefinition(name="reporting_clients")
BATCH_PARTITIONS = dg.DynamicPartitionsDefinition(name="completed_batches")
# A SQL name: the columns a report reads are the words of its SQL that name one.
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Dagster's tags for a run over a partition range (a single-run backfill).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Consecutive batch partitions with a report already are folded into one run's range
# (the asset skips them) rather than splitting the catch-up into many runs.
BATCH_RANGE_MAX_GAP = 50
TERMINAL_ITEM_STATUSES = ("COMPLETED", "FAILED")
# Report previews: enough rows to recognise the report; never a patient column.
PREVIEW_ROWS = 10
PREVIEW_EXCLUDED_COLUMNS = frozenset({"nhsnumber"})
CHART_NAME = "chart.png"
CHANNELS_COLUMN = "completedcommunicationtypes"


def comms_partitions_def(settings: Settings) -> dg.MultiPartitionsDefinition:
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


def _segment(value: str) -> str:
    """A path segment from a client-supplied id: never a separator or a dot-name."""
    if value in ("", ".", ".."):
        raise ValueError(f"{value!r} cannot be part of a report path")
    return quote(value, safe="-_.")


def completed_comms_report_key(client_id: str, report_date: date) -> str:
    """Object key of one client's report for one day (DESIGN §5 path)."""
    day = report_date.isoformat()
    client = _segment(client_id)
    return (
        f"reports/completed_comms_report/{client}/{day}/completed_comms_report_{client}_{day}.csv"
    )


def completed_batch_report_key(client_id: str, request_id: str, request_ref_id: str) -> str:
    """Object key of one batch's report (DESIGN §5 path)."""
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
    unfinished = sorted(
        set(
            items.filter(pc.invert(pc.is_in(items["status"], pa.array(TERMINAL_ITEM_STATUSES))))[
                "requestid"
            ].to_pylist()
        )
        | set(items.filter(pc.is_null(items["status"]))["requestid"].to_pylist())
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


# -- previews: Markdown rows and a channel chart -----------------------------------------


def read_report(objects: ObjectStore, key: str) -> pa.Table:
    """A written report, read back from its CSV."""
    return pa_csv.read_csv(io.BytesIO(objects.read_bytes(key)))


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_preview(
    objects: ObjectStore, keys: Sequence[str], *, limit: int = PREVIEW_ROWS
) -> str:
    """The first rows of the reports at ``keys`` as one Markdown table.

    Args:
        objects: where the reports are.
        keys: report keys, in order; read only until ``limit`` rows are found.
        limit: the most rows shown.

    Returns:
        A Markdown table with a ``report`` column naming each row's file.
    """
    columns: list[str] = []
    rows: list[dict[str, Any]] = []
    read = 0
    for key in keys:
        if len(rows) >= limit:
            break
        table = read_report(objects, key)
        read += 1
        kept = [c for c in table.column_names if c not in PREVIEW_EXCLUDED_COLUMNS]
        columns += [c for c in kept if c not in columns]
        name = key.rpartition("/")[2]
        rows += [
            {"report": name, **r}
            for r in table.select(kept).slice(0, limit - len(rows)).to_pylist()
        ]
    if not rows:
        return f"_No rows in {read} report(s)._" if keys else "_No report in this run._"
    header = ["report", *columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(_cell(r.get(c)) for c in header) + " |" for r in rows),
        "",
        f"_First {len(rows)} row(s) of {read} of {len(keys)} report(s)._",
    ]
    return "\n".join(lines)


def completed_channel_counts(report: pa.Table) -> Counter[str]:
    """Completed communications per channel in one comms report."""
    counts: Counter[str] = Counter()
    if CHANNELS_COLUMN not in report.column_names:
        return counts
    for value in report[CHANNELS_COLUMN].to_pylist():
        counts.update(c for c in str(value or "").split("|") if c)
    return counts


def daily_channel_chart_png(counts: Mapping[date, Mapping[str, int]], *, title: str) -> bytes:
    """A bar chart of completed communications per day and channel, as PNG bytes."""
    # Imported here: matplotlib is only needed when a report is written, not at load.
    from matplotlib.figure import Figure

    days = sorted(counts)
    channels = sorted({c for day in days for c in counts[day]})
    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    axes = figure.subplots()
    width = 0.8 / max(len(channels), 1)
    for i, channel in enumerate(channels):
        axes.bar(
            [d + i * width for d in range(len(days))],
            [counts[day].get(channel, 0) for day in days],
            width=width,
            label=channel,
        )
    axes.set_xticks(
        [d + width * (len(channels) - 1) / 2 for d in range(len(days))],
        [day.isoformat() for day in days],
    )
    axes.set_ylabel("completed communications")
    axes.set_title(title)
    if channels:
        axes.legend(title="channel")
    else:
        axes.text(0.5, 0.5, "no completed communications", ha="center", transform=axes.transAxes)
    sink = io.BytesIO()
    figure.savefig(sink, format="png", bbox_inches="tight")
    return sink.getvalue()


def chart_key(report_key: str) -> str:
    """Where a report's chart goes: ``chart.png`` in the report's directory."""
    return f"{report_key.rpartition('/')[0]}/{CHART_NAME}"


def write_comms_charts(
    objects: ObjectStore, written: Sequence[str], days: Mapping[str, date]
) -> list[str]:
    """Write a channel chart beside each newly written comms report (or one lacking it).

    Args:
        objects: where the reports are.
        written: keys of the reports this run wrote, and of reports without a chart.
        days: the report date of each key.

    Returns:
        The chart keys.
    """
    charts = []
    for key in written:
        day = days[key]
        counts = completed_channel_counts(read_report(objects, key))
        client = key.split("/")[2]
        png = daily_channel_chart_png(
            {day: counts}, title=f"Completed communications by channel: {client}, {day}"
        )
        charts.append(chart_key(key))
        objects.write_bytes(charts[-1], png)
    return charts


def chart_metadata(objects: ObjectStore, charts: Sequence[str]) -> dict[str, Any]:
    """Metadata pointing at the charts: all paths, and the first as an image and link."""
    if not charts:
        return {"chart_paths": dg.MetadataValue.json([])}
    uri = objects.uri(charts[0])
    return {
        "chart_paths": dg.MetadataValue.json([objects.uri(k) for k in charts]),
        "chart_path": dg.MetadataValue.path(uri),
        "chart": dg.MetadataValue.md(
            f"![Completed communications by channel]({uri})\n\n[{CHART_NAME}]({uri})"
        ),
    }


# -- planning: which partitions are due ------------------------------------------------


def report_clients(settings: Settings, delta: DeltaTableStore) -> list[str]:
    """Clients that get a daily report: from config, else every client the staging knows."""
    if settings.reporting.clients:
        return list(settings.reporting.clients)
    seen: set[str] = set()
    for key in (CLIENT_LATEST_NAME, REQUEST_ITEM_STATUS):
        table = delta.read_or_none(key.path, columns=["clientid"])
        if table is not None:
            seen.update(c for c in table["clientid"].to_pylist() if c)
    return sorted(seen)


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
    settings: Settings,
    instance: dg.DagsterInstance,
    delta: DeltaTableStore,
    objects: ObjectStore,
    now: datetime,
) -> ReportPlan:
    """Yesterday's report for every client, plus any expected earlier one that is missing.

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
            due = (
                set(clients)
                if day == yesterday
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
    *, settings: Settings, instance: dg.DagsterInstance, delta: DeltaTableStore, now: datetime
) -> list[Batch]:
    """Batches whose items all finished, settled and within the lookback."""
    reporting = settings.reporting
    coverage = _first_window_start(instance, REQUEST_ITEM_STATUS)
    items = delta.read_or_none(
        REQUEST_ITEM_STATUS.path,
        columns=["clientid", "requestid", "requestrefid", "status", "createdtime", "completedtime"],
    )
    if coverage is None or items is None:
        return []
    found = run_sql(
        "completed_batches",
        {"request_item_status": items},
        {
            "completed_since": now - timedelta(days=reporting.batch_report_lookback_days),
            "settled_before": now - timedelta(minutes=reporting.batch_settle_minutes),
            "created_since": coverage,
        },
    )
    return [
        Batch(r["clientid"], r["requestid"], r["requestrefid"] or "") for r in found.to_pylist()
    ]


def plan_batch_reports(
    *,
    job_name: str,
    settings: Settings,
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


# -- the assets ------------------------------------------------------------------------


# A single-run backfill records one materialisation per partition, each carrying this
# metadata, so the path list is bounded: listing every report made the event log grow
# with the square of the partitions (2,975 batch reports at bench scale M: 1.9 GB).
LISTED_REPORT_PATHS = 20


def report_metadata(
    objects: ObjectStore, written: list[str], existing: list[str], **extra: Any
) -> dict[str, Any]:
    keys = written + existing
    return {
        **extra,
        "reports_written": len(written),
        "reports_already_present": len(existing),
        "report_paths": dg.MetadataValue.json([objects.uri(k) for k in keys[:LISTED_REPORT_PATHS]]),
        "report_paths_not_listed": max(0, len(keys) - LISTED_REPORT_PATHS),
        "preview": dg.MetadataValue.md(markdown_preview(objects, keys)),
    }


def build_defs(settings: Settings) -> dg.Definitions:
    """The canned report assets."""
    kinds = {"csv", "s3"} if settings.lake_is_s3 else {"csv"}

    # BackfillPolicy is still marked beta in Dagster 1.13, yet it is how an asset takes a
    # partition range in one run; without this the warning prints on every load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)

        @dg.asset(
            key=COMPLETED_COMMS_REPORT,
            deps=[REQUEST_ITEM_STATUS],
            partitions_def=comms_partitions_def(settings),
            backfill_policy=dg.BackfillPolicy.single_run(),
            group_name="reports",
            kinds=kinds,
            owners=["team:reporting"],
            tags={"zone": "reports"},
        )
        def completed_comms_report(
            context: dg.AssetExecutionContext, delta: DeltaTableStore, objects: ObjectStore
        ) -> dg.MaterializeResult:
            """Per client and day, the request items completed or failed that day, as one CSV."""
            clients_by_day: dict[date, list[str]] = defaultdict(list)
            for key in context.partition_keys:
                client_id, day = parse_comms_partition_key(key)
                clients_by_day[day].append(client_id)
            days = sorted(clients_by_day)
            items = read_rows_in(
                delta,
                REQUEST_ITEM_STATUS.path,
                "completeddate",
                days,
                columns=report_columns("completed_comms_report"),
            )
            if items is None:
                raise dg.Failure("reporting/request_item_status has not been materialised yet")
            written: list[str] = []
            existing: list[str] = []
            day_of: dict[str, date] = {}
            for day in days:
                new, old = write_completed_comms_reports(
                    items=items,
                    clients=sorted(clients_by_day[day]),
                    report_date=day,
                    objects=objects,
                )
                written += new
                existing += old
                day_of.update(dict.fromkeys(new + old, day))
            # A run killed between a report and its chart leaves the report without one:
            # its chart is drawn now (the report itself is never rewritten).
            uncharted = [k for k in existing if not objects.exists(chart_key(k))]
            charts = write_comms_charts(objects, written + uncharted, day_of)
            context.log.info(f"wrote {len(written)} report(s); {len(existing)} already existed")
            return dg.MaterializeResult(
                metadata=report_metadata(
                    objects,
                    written,
                    existing,
                    report_date=days[-1].isoformat(),
                    report_dates=dg.MetadataValue.json([d.isoformat() for d in days]),
                    clients=len({c for cs in clients_by_day.values() for c in cs}),
                    **chart_metadata(objects, charts),
                )
            )

        @dg.asset(
            key=COMPLETED_BATCH_REPORT,
            deps=[REQUEST_ITEM_STATUS, REQUEST_ITEM_PLAN_STATUS],
            partitions_def=BATCH_PARTITIONS,
            backfill_policy=dg.BackfillPolicy.single_run(),
            group_name="reports",
            kinds=kinds,
            owners=["team:reporting"],
            tags={"zone": "reports"},
        )
        def completed_batch_report(
            context: dg.AssetExecutionContext, delta: DeltaTableStore, objects: ObjectStore
        ) -> dg.MaterializeResult:
            """Per completed batch, every request item and channel with its outcome, as one CSV."""
            request_ids = sorted(set(context.partition_keys))
            # The report's SQL, and the batch checks and paths in Python.
            wanted = report_columns(
                "completed_batch_report", "clientid", "requestid", "requestrefid", "status"
            )
            items = read_rows_in(
                delta, REQUEST_ITEM_STATUS.path, "requestid", request_ids, columns=wanted
            )
            plans = read_rows_in(
                delta, REQUEST_ITEM_PLAN_STATUS.path, "requestid", request_ids, columns=wanted
            )
            if items is None or plans is None:
                missing = REQUEST_ITEM_STATUS if items is None else REQUEST_ITEM_PLAN_STATUS
                raise dg.Failure(f"{missing.to_user_string()} has not been materialised yet")
            written, existing = write_completed_batch_reports(
                request_ids=request_ids, items=items, plans=plans, objects=objects
            )
            context.log.info(
                f"wrote {len(written)} batch report(s); {len(existing)} already existed"
            )
            return dg.MaterializeResult(
                metadata=report_metadata(objects, written, existing, batches=len(request_ids))
            )

    return dg.Definitions(assets=[completed_comms_report, completed_batch_report])
