"""Canned reports written to object storage as CSV: partitioned assets.

``completed_comms_report`` is partitioned by client (dynamic partitions, registered
from config or from the clients the staging tables know) and by completion date
(daily, Europe/London): one CSV per client and day. ``completed_batch_report`` is
partitioned by batch (dynamic partitions keyed by ``requestid``, registered when a
batch completes): one CSV per completed batch. Paths follow docs/CONTRACTS.md §3.

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
of its delivered communications by channel, ``chart.png`` beside the CSV. Reports hold
only client references and statuses, so the previews carry no patient values.
"""

import warnings
from collections import defaultdict
from datetime import date

import dagster as dg

from assets.reporting.settings import ReportsDomain
from assets.reporting.staging import REQUEST_ITEM_PLAN_STATUS, REQUEST_ITEM_STATUS
from assets.reports.id_check import build_id_check
from assets.reports.partitions import (
    BATCH_PARTITIONS,
    COMPLETED_BATCH_REPORT,
    COMPLETED_COMMS_REPORT,
    comms_partitions_def,
    parse_comms_partition_key,
)
from assets.reports.previews import chart_key, chart_metadata, report_metadata, write_comms_charts
from assets.reports.writing import (
    completed_comms_rows,
    read_comms_inputs,
    read_rows_in,
    report_columns,
    write_completed_batch_reports,
    write_completed_comms_reports,
)
from resources.delta.store import DeltaTableStore
from resources.object_store import ObjectStore

REVISION_CHECK = "reports_match_their_data"
REVISION_CHECK_SPEC = dg.AssetCheckSpec(
    REVISION_CHECK,
    asset=COMPLETED_COMMS_REPORT,
    description="Every written comms report still matches its day's data; fails (warn) when "
    "late CDC records changed a day already reported and a corrected version was written.",
)


def revision_check(revised: list[str]) -> dg.AssetCheckResult:
    """Warn, naming the corrected versions, when a reported day's data changed."""
    return dg.AssetCheckResult(
        check_name=REVISION_CHECK,
        asset_key=COMPLETED_COMMS_REPORT,
        passed=not revised,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "reports_revised": len(revised),
            "corrected_versions": dg.MetadataValue.json(revised[:50]),
        },
    )


def build_defs(settings: ReportsDomain) -> dg.Definitions:
    """The canned report assets."""
    kinds = {"csv", "s3"} if settings.lake_is_s3 else {"csv"}

    # BackfillPolicy is still marked beta in Dagster 1.13, yet it is how an asset takes a
    # partition range in one run; without this the warning prints on every load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)

        @dg.asset(
            key=COMPLETED_COMMS_REPORT,
            deps=[REQUEST_ITEM_STATUS, REQUEST_ITEM_PLAN_STATUS],
            partitions_def=comms_partitions_def(settings),
            backfill_policy=dg.BackfillPolicy.single_run(),
            group_name="reports",
            kinds=kinds,
            owners=["team:reporting"],
            tags={"zone": "reports"},
            check_specs=[REVISION_CHECK_SPEC],
        )
        def completed_comms_report(
            context: dg.AssetExecutionContext, delta: DeltaTableStore, objects: ObjectStore
        ) -> dg.MaterializeResult:
            """Per client and day, the channel attempts that ended that day and the items failed
            without one, as one CSV (NHS Notify's completed comms report)."""
            clients_by_day: dict[date, list[str]] = defaultdict(list)
            for key in context.partition_keys:
                client_id, day = parse_comms_partition_key(key)
                clients_by_day[day].append(client_id)
            days = sorted(clients_by_day)
            inputs = read_comms_inputs(
                delta, days, columns=report_columns("completed_comms_report")
            )
            if inputs is None:
                raise dg.Failure(
                    "reporting/request_item_status and request_item_plan_status have not "
                    "been materialised yet"
                )
            items, plans = inputs
            written: list[str] = []
            existing: list[str] = []
            revised: list[str] = []
            day_of: dict[str, date] = {}
            for day in days:
                rows = completed_comms_rows(
                    items=items, plans=plans, report_date=day, timezone=settings.reporting.timezone
                )
                writes = write_completed_comms_reports(
                    rows=rows, clients=sorted(clients_by_day[day]), report_date=day, objects=objects
                )
                written += writes.written
                existing += writes.existing
                revised += writes.revised
                day_of.update(dict.fromkeys(writes.written + writes.existing, day))
            # A run killed between a report and its chart leaves the report without one:
            # its chart is drawn now (the report itself is never rewritten).
            uncharted = [k for k in existing if not objects.exists(chart_key(k))]
            charts = write_comms_charts(objects, written + uncharted, day_of)
            context.log.info(f"wrote {len(written)} report(s); {len(existing)} already existed")
            if revised:
                context.log.warning(
                    f"{len(revised)} written report(s) no longer matched their day's data "
                    "(CDC records that landed after they were written): corrected versions "
                    "written beside them"
                )
            return dg.MaterializeResult(
                check_results=[revision_check(revised)],
                metadata=report_metadata(
                    objects,
                    written + revised,
                    existing,
                    reports_revised=len(revised),
                    report_date=days[-1].isoformat(),
                    report_dates=dg.MetadataValue.json([d.isoformat() for d in days]),
                    clients=len({c for cs in clients_by_day.values() for c in cs}),
                    **chart_metadata(objects, charts),
                ),
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
            """Per completed batch, its completed comms: every final plan and each item failed
            without one, as one CSV (NHS Notify's completed batch report)."""
            request_ids = sorted(set(context.partition_keys))
            # The completed_comms view's SQL, and the batch checks and paths in Python.
            wanted = report_columns(
                also=("clientid", "requestid", "requestrefid", "status", "completedtime"),
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

    return dg.Definitions(
        assets=[completed_comms_report, completed_batch_report],
        asset_checks=[build_id_check(settings)],
    )
