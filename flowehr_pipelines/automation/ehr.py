"""Jobs, schedules and sensors of the EHR and feature domains.

A nightly schedule loads every source. Between those runs a sensor per source polls
the source's newest change number per table against the stored changelog numbers
and, when any table lags, requests a run of the EHR job for that source's bronze
assets and everything downstream of them (silver, features). The run key is the
source and its newest change number, so a set of changes is requested once however
often the sensor polls. The sensor stays quiet while a load of the source is queued
or running (it rebuilds the same silver tables), or while a live load holds the
source's lock.
"""

from datetime import timedelta

import dagster as dg

from assets.ehr.etl_lock import EtlLockStore
from assets.ehr.etl_state import EtlStateStore, table_lags
from assets.ehr.settings import DataSourceConnection
from flowehr_pipelines.config import Settings
from resources.delta.store import DeltaTableStore
from resources.sql_source import SqlSourceResource

EHR_JOB = "ehr_job"
EHR_GROUPS = ("ehr", "governance", "features")
SOURCE_TAG = "flowehr/source"
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def sensor_name(source: str) -> str:
    return f"{source}_source_changes_sensor"


def build_source_sensor(
    *,
    connection: DataSourceConnection,
    settings: Settings,
) -> dg.SensorDefinition:
    """A sensor requesting a load of one source (and its downstream) when it changes."""
    bronze = [dg.AssetKey(["bronze", connection.name, t.name]) for t in connection.tables]
    stale_after = timedelta(minutes=settings.ehr.lock_stale_after_minutes)

    @dg.sensor(
        name=sensor_name(connection.name),
        job_name=EHR_JOB,
        minimum_interval_seconds=settings.ehr.sensor_interval_seconds,
        required_resource_keys={connection.name, "delta"},
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if settings.ehr.automation_running
            else dg.DefaultSensorStatus.STOPPED
        ),
        description=(
            f"Polls the `{connection.name}` source's newest change numbers and requests a "
            "changelog load (and the silver and feature rebuild after it) when they move."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        source: SqlSourceResource = getattr(context.resources, connection.name)
        delta: DeltaTableStore = context.resources.delta
        lags = table_lags(connection.name, connection.tables, source, EtlStateStore(delta))
        pending = [lag for lag in lags if lag.has_changes]
        if not pending:
            return dg.SkipReason(f"{connection.name}: no new changes")
        active = context.instance.get_run_records(
            # Any EHR run: it rebuilds the silver tables this run would write too.
            dg.RunsFilter(job_name=EHR_JOB, statuses=ACTIVE_RUN_STATUSES),
            limit=1,
        )
        if active:
            return dg.SkipReason(
                f"{connection.name}: waiting for EHR run {active[0].dagster_run.run_id} to finish"
            )
        locks = EtlLockStore(delta, stale_after=stale_after)
        holder = locks.holder(connection.name)
        if holder is not None and not holder.is_stale(locks.now(), stale_after):
            return dg.SkipReason(f"{connection.name}: locked by {holder.describe(locks.now())}")
        head = max(lag.source_head or 0 for lag in lags)
        behind = ", ".join(f"{lag.table_name} +{lag.lag}" for lag in pending)
        context.log.info(f"{connection.name}: new changes up to {head} ({behind})")
        return dg.RunRequest(
            run_key=f"{connection.name}:{head}",
            asset_selection=_with_downstream(context, bronze),
            tags={SOURCE_TAG: connection.name},
        )

    return _sensor


def _with_downstream(
    context: dg.SensorEvaluationContext, bronze: list[dg.AssetKey]
) -> list[dg.AssetKey]:
    """The source's bronze keys and everything below them that the EHR job holds."""
    repository = context.repository_def
    if repository is None:
        return bronze
    graph = repository.asset_graph
    below = dg.AssetSelection.assets(*bronze).downstream().resolve(graph)
    in_job = dg.AssetSelection.groups(*EHR_GROUPS).resolve(graph)
    return sorted(below & in_job)


def build_defs(settings: Settings) -> dg.Definitions:
    """The EHR job, its nightly schedule and one change sensor per source."""
    ehr_job = dg.define_asset_job(
        EHR_JOB,
        selection=dg.AssetSelection.groups(*EHR_GROUPS),
        description="Load EHR sources into bronze, then rebuild silver tables and features.",
        executor_def=dg.in_process_executor,
    )
    nightly = dg.ScheduleDefinition(
        name="ehr_daily_schedule",
        job=ehr_job,
        cron_schedule="0 3 * * *",
        execution_timezone=settings.reporting.timezone,
        description="Nightly EHR changelog load and feature rebuild at 03:00 UK time.",
        # Off until switched on, like the reporting automation: `dagster dev` on a
        # laptop should not start loading sources the moment the daemon comes up.
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if settings.ehr.automation_running
            else dg.DefaultScheduleStatus.STOPPED
        ),
    )
    sensors = [
        build_source_sensor(connection=connection, settings=settings)
        for connection in settings.data_source_connections
    ]
    return dg.Definitions(jobs=[ehr_job], schedules=[nightly], sensors=sensors)
