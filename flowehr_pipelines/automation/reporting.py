"""Jobs, schedules and sensors of the reporting domain, on NHS Notify's cadence.

Every job runs in process (one Python process per run, no JVM per step) and can be
launched by hand from the UI; each is idempotent, so a manual run beside a scheduled
one changes nothing twice.

| job | schedule (Europe/London) | does |
|---|---|---|
| ``reporting_job`` | ``0 1,4,8-18 * * *``, landing sensor | ingest CDC files, pass 1, 2 |
| ``reporting_housekeeping_job`` | ``0 2 * * *`` | OPTIMIZE + VACUUM; feature history |
| ``reporting_watchdog_job`` | ``30 * * * *`` | the watchdog asset checks |
| ``completed_comms_report_job`` | ``30 4 * * *`` | yesterday's report per client (+ missing) |
| ``completed_batch_report_job`` | ``30 1,4,8-18 * * *`` | a report per newly completed batch |

The landing sensor compares the landing zone with the files bronze has recorded as
ingested (the Delta app-transaction markers, the same truth ingestion uses), so it
works the same on a local directory or S3 and never re-requests an ingested file. Its
run key is a digest of the pending file set: the same set is requested once; a new
file makes a new set. While an ingestion run is queued or running it waits, so two
ingestions do not race for the same files.

The report schedules decide which partitions are due with the planning functions in
``assets.reports``; ``flowehr run`` calls the same functions (``report_catch_up``).
The watchdog checks and the partitioned reports are left out of the all-assets job
(``separately_run``): watchdogs watch the clock, not the data, and partitioned assets
run per partition range.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from assets.housekeeping import FEATURE_HOUSEKEEPING_LOG, HOUSEKEEPING_LOG
from assets.reporting.ingestion import pending_landing_keys
from assets.reporting.watchdogs import WATCHDOG_CHECK_KEYS
from assets.reports.partitions import COMPLETED_BATCH_REPORT, COMPLETED_COMMS_REPORT
from assets.reports.planning import ReportPlan, plan_batch_reports, plan_comms_reports
from flowehr_pipelines.automation import alerts
from flowehr_pipelines.config import Settings
from resources.delta.store import DeltaTableStore
from resources.object_store import ObjectStore

REPORTING_JOB = "reporting_job"
HOUSEKEEPING_JOB = "reporting_housekeeping_job"
WATCHDOG_JOB = "reporting_watchdog_job"
COMMS_REPORT_JOB = "completed_comms_report_job"
BATCH_REPORT_JOB = "completed_batch_report_job"
LANDING_SENSOR = "landing_files_sensor"
COMMS_REPORT_SCHEDULE = "completed_comms_report_schedule"
BATCH_REPORT_SCHEDULE = "completed_batch_report_schedule"
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def separately_run() -> dg.AssetSelection:
    """What the all-assets job leaves out: partitioned reports and watchdog checks."""
    return dg.AssetSelection.assets(
        COMPLETED_COMMS_REPORT, COMPLETED_BATCH_REPORT
    ) | dg.AssetSelection.checks(*WATCHDOG_CHECK_KEYS)


def landing_fingerprint(keys: Sequence[str]) -> str:
    """A short digest of a set of landing keys, for run keys and the cursor."""
    return hashlib.sha256("\n".join(sorted(keys)).encode("utf-8")).hexdigest()[:20]


def evaluate_landing(
    context: dg.SensorEvaluationContext, objects: ObjectStore, delta: DeltaTableStore
) -> dg.SensorResult | dg.SkipReason:
    """Request one ingestion run per new set of landed files."""
    pending = pending_landing_keys(objects, delta)
    if not pending:
        return dg.SkipReason("no landed files waiting for ingestion")
    active = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=REPORTING_JOB, statuses=ACTIVE_RUN_STATUSES), limit=1
    )
    if active:
        return dg.SkipReason(
            f"{len(pending)} file(s) waiting; ingestion run {active[0].run_id[:8]} is in progress"
        )
    fingerprint = landing_fingerprint(pending)
    cursor = json.dumps({"pending": fingerprint, "files": len(pending), "last": pending[-1]})
    if context.cursor == cursor:
        return dg.SkipReason(f"{len(pending)} file(s) already requested (set {fingerprint})")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"landing-{fingerprint}",
                tags={
                    "flowehr/trigger": "landing_sensor",
                    "flowehr/pending_files": str(len(pending)),
                },
            )
        ],
        cursor=cursor,
    )


def _plan_reports(
    job_name: str,
    context: dg.ScheduleEvaluationContext,
    settings: Settings,
    delta: DeltaTableStore,
    objects: ObjectStore,
) -> ReportPlan:
    planner = plan_comms_reports if job_name == COMMS_REPORT_JOB else plan_batch_reports
    now = context.scheduled_execution_time or datetime.now(UTC)
    return planner(
        job_name=job_name,
        settings=settings,
        instance=context.instance,
        delta=delta,
        objects=objects,
        now=now.astimezone(UTC),
    )


def _schedule_result(plan: ReportPlan) -> list[dg.RunRequest] | dg.SkipReason:
    if plan.run_requests:
        return plan.run_requests
    return dg.SkipReason("; ".join(plan.skipped) or "no report due")


def report_catch_up(
    *,
    settings: Settings,
    instance: dg.DagsterInstance,
    delta: DeltaTableStore,
    objects: ObjectStore,
    now: datetime | None = None,
    selected: set[dg.AssetKey] | None = None,
) -> list[ReportPlan]:
    """The report runs due now, as the report schedules would request them.

    ``flowehr run`` executes these after the all-assets job, so a manual run writes
    the same reports the schedules would.
    """
    moment = now or datetime.now(UTC)
    plans = []
    for key, job_name, planner in (
        (COMPLETED_COMMS_REPORT, COMMS_REPORT_JOB, plan_comms_reports),
        (COMPLETED_BATCH_REPORT, BATCH_REPORT_JOB, plan_batch_reports),
    ):
        if selected is None or key in selected:
            plans.append(
                planner(
                    job_name=job_name,
                    settings=settings,
                    instance=instance,
                    delta=delta,
                    objects=objects,
                    now=moment,
                )
            )
    return plans


def build_defs(settings: Settings) -> dg.Definitions:
    """The reporting jobs, their Europe/London schedules, the landing sensor and alerts."""
    tz = settings.reporting.timezone
    # Off until switched on (in the UI, or by config in a deployment): a developer's
    # `dagster dev` should not start ingesting the moment the daemon comes up.
    running = settings.reporting.automation_running
    schedule_status = (
        dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    )
    sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    reporting_job = dg.define_asset_job(
        REPORTING_JOB,
        selection=dg.AssetSelection.groups("reporting")
        - dg.AssetSelection.checks(*WATCHDOG_CHECK_KEYS),
        description="Ingest landed CDC files, then pass-1 projections and pass-2 aggregations.",
        executor_def=dg.in_process_executor,
    )
    housekeeping_job = dg.define_asset_job(
        HOUSEKEEPING_JOB,
        selection=dg.AssetSelection.assets(HOUSEKEEPING_LOG, FEATURE_HOUSEKEEPING_LOG),
        description="OPTIMIZE and VACUUM the reporting tables; keep the feature tables' history.",
        executor_def=dg.in_process_executor,
    )
    watchdog_job = dg.define_asset_job(
        WATCHDOG_JOB,
        selection=dg.AssetSelection.checks(*WATCHDOG_CHECK_KEYS),
        description="Evaluate the watchdogs: overdue plans, items and requests, stuck items.",
        executor_def=dg.in_process_executor,
    )
    comms_job = dg.define_asset_job(
        COMMS_REPORT_JOB,
        selection=dg.AssetSelection.assets(COMPLETED_COMMS_REPORT),
        description="Write completed comms reports (client x day) that are due.",
        executor_def=dg.in_process_executor,
    )
    batch_job = dg.define_asset_job(
        BATCH_REPORT_JOB,
        selection=dg.AssetSelection.assets(COMPLETED_BATCH_REPORT),
        description="Write the reports of completed batches that have none.",
        executor_def=dg.in_process_executor,
    )

    ingestion = dg.ScheduleDefinition(
        name="reporting_ingestion_schedule",
        job=reporting_job,
        cron_schedule="0 1,4,8-18 * * *",
        execution_timezone=tz,
        default_status=schedule_status,
        description="NHS Notify cadence: 01:00, 04:00 and hourly 08:00-18:00 UK time.",
    )
    housekeeping = dg.ScheduleDefinition(
        name="reporting_housekeeping_schedule",
        job=housekeeping_job,
        cron_schedule="0 2 * * *",
        execution_timezone=tz,
        default_status=schedule_status,
        description="Nightly OPTIMIZE and VACUUM of the staging tables at 02:00 UK time.",
    )
    watchdog = dg.ScheduleDefinition(
        name="reporting_watchdog_schedule",
        job=watchdog_job,
        cron_schedule="30 * * * *",
        execution_timezone=tz,
        default_status=schedule_status,
        description="The watchdogs at half past every hour.",
    )

    @dg.schedule(
        name=COMMS_REPORT_SCHEDULE,
        job=comms_job,
        cron_schedule="30 4 * * *",
        execution_timezone=tz,
        default_status=schedule_status,
        description="Yesterday's completed comms report for every client at 04:30 UK time, "
        "and any missing one of the last days.",
    )
    def comms_report_schedule(
        context: dg.ScheduleEvaluationContext, delta: DeltaTableStore, objects: ObjectStore
    ) -> list[dg.RunRequest] | dg.SkipReason:
        return _schedule_result(_plan_reports(COMMS_REPORT_JOB, context, settings, delta, objects))

    @dg.schedule(
        name=BATCH_REPORT_SCHEDULE,
        job=batch_job,
        cron_schedule="30 1,4,8-18 * * *",
        execution_timezone=tz,
        default_status=schedule_status,
        description="Completed batch reports half an hour after each ingestion (UK time).",
    )
    def batch_report_schedule(
        context: dg.ScheduleEvaluationContext, delta: DeltaTableStore, objects: ObjectStore
    ) -> list[dg.RunRequest] | dg.SkipReason:
        return _schedule_result(_plan_reports(BATCH_REPORT_JOB, context, settings, delta, objects))

    @dg.sensor(
        name=LANDING_SENSOR,
        job=reporting_job,
        minimum_interval_seconds=settings.reporting.landing_sensor_interval_seconds,
        description="Starts an ingestion run when new CDC files land (local directory or S3).",
        default_status=sensor_status,
    )
    def landing_files_sensor(
        context: dg.SensorEvaluationContext, objects: ObjectStore, delta: DeltaTableStore
    ) -> dg.SensorResult | dg.SkipReason:
        return evaluate_landing(context, objects, delta)

    return dg.Definitions.merge(
        dg.Definitions(
            jobs=[reporting_job, housekeeping_job, watchdog_job, comms_job, batch_job],
            schedules=[
                ingestion,
                housekeeping,
                watchdog,
                comms_report_schedule,
                batch_report_schedule,
            ],
            sensors=[landing_files_sensor],
        ),
        alerts.build_defs(settings),
    )
