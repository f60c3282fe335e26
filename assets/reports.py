"""Canned reports written to object storage as CSV, one file per client and day.

A report that exists is never rewritten (clients may already have fetched it); a
missing one is written on the next run; and a report the run should have written but
cannot find afterwards fails the run loudly rather than leaving a silent gap.
"""

import io
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from assets.reporting import REQUEST_ITEM_STATUS
from flowehr_pipelines.config import Settings
from resources.delta_store import DeltaTableStore
from resources.object_store import ObjectStore
from transforms.reporting import run_sql
from transforms.reporting.calendar import local_yesterday

COMPLETED_COMMS_REPORT = dg.AssetKey(["reports", "completed_comms_report"])


class CompletedCommsReportConfig(dg.Config):
    """Which day to report on; default yesterday in the reporting time zone."""

    report_date: str | None = None


def completed_comms_report_key(client_id: str, report_date: date) -> str:
    """Object key of one client's report for one day (DESIGN §5 path)."""
    day = report_date.isoformat()
    return (
        f"reports/completed_comms_report/{client_id}/{day}/"
        f"completed_comms_report_{client_id}_{day}.csv"
    )


def to_csv_bytes(data: pa.Table) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(data, sink)
    return sink.getvalue()


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
    missing = [k for k in (*written, *existing) if not objects.exists(k)]
    if missing:
        raise dg.Failure(
            description=f"{len(missing)} completed comms report(s) missing after writing",
            metadata={"missing": dg.MetadataValue.json(missing)},
        )
    return written, existing


def build_defs(settings: Settings) -> dg.Definitions:
    """The canned report assets."""
    reporting = settings.reporting

    @dg.asset(
        key=COMPLETED_COMMS_REPORT,
        deps=[REQUEST_ITEM_STATUS],
        group_name="reports",
        kinds={"csv", "s3"} if settings.lake_is_s3 else {"csv"},
        owners=["team:reporting"],
        tags={"zone": "reports"},
    )
    def completed_comms_report(
        context: dg.AssetExecutionContext,
        config: CompletedCommsReportConfig,
        delta: DeltaTableStore,
        objects: ObjectStore,
    ) -> dg.MaterializeResult:
        """Per client, the request items completed or failed on the report day, as CSV."""
        report_date = (
            date.fromisoformat(config.report_date)
            if config.report_date
            else local_yesterday(reporting.timezone)
        )
        items = delta.read(REQUEST_ITEM_STATUS.path)
        clients = reporting.clients or sorted(
            {c for c in items["clientid"].to_pylist() if c is not None}
        )
        written, existing = write_completed_comms_reports(
            items=items, clients=clients, report_date=report_date, objects=objects
        )
        context.log.info(f"wrote {len(written)} report(s); {len(existing)} already existed")
        return dg.MaterializeResult(
            metadata={
                "report_date": report_date.isoformat(),
                "clients": len(clients),
                "reports_written": len(written),
                "reports_already_present": len(existing),
                "report_paths": dg.MetadataValue.json([objects.uri(k) for k in written + existing]),
            }
        )

    return dg.Definitions(assets=[completed_comms_report])
