"""What the UI shows of a report: a Markdown preview without identifiers, a daily channel
chart, bounded metadata.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa

from assets.reports.writing import read_report
from resources.object_store import ObjectStore

# Report previews: enough rows to recognise the report; never a patient column.
PREVIEW_ROWS = 10

PREVIEW_EXCLUDED_COLUMNS = frozenset({"nhsnumber"})

CHART_NAME = "chart.png"

CHANNEL_COLUMN = "communicationtype"
PLAN_STATUS_COLUMN = "requestitemplanstatus"


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
    """Delivered communications per channel in one comms report (its DELIVERED plans)."""
    counts: Counter[str] = Counter()
    if not {CHANNEL_COLUMN, PLAN_STATUS_COLUMN} <= set(report.column_names):
        return counts
    channels = report[CHANNEL_COLUMN].to_pylist()
    for channel, status in zip(channels, report[PLAN_STATUS_COLUMN].to_pylist(), strict=True):
        if status == "DELIVERED" and channel:
            counts[str(channel)] += 1
    return counts


def daily_channel_chart_png(counts: Mapping[date, Mapping[str, int]], *, title: str) -> bytes:
    """A bar chart of delivered communications per day and channel, as PNG bytes."""
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
    axes.set_ylabel("delivered communications")
    axes.set_title(title)
    if channels:
        axes.legend(title="channel")
    else:
        axes.text(0.5, 0.5, "no delivered communications", ha="center", transform=axes.transAxes)
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
            {day: counts}, title=f"Delivered communications by channel: {client}, {day}"
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
            f"![Delivered communications by channel]({uri})\n\n[{CHART_NAME}]({uri})"
        ),
    }


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
