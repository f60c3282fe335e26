"""A heartbeat: a tiny scheduled run whose success proves the whole launch path works.

Schedule tick in the daemon, run queued, dequeued, launched in a new process that loads
the code location, op executed, success recorded in the instance: when any link breaks,
no heartbeat succeeds. ``flowehr metrics`` exposes the last success
(``flowehr_run_last_finished_timestamp_seconds{job="platform_heartbeat_job"}``), and
the example alert fires when it is older than two intervals (docs/METRICS.md). It
touches no data, so it is safe at any cadence.
"""

import dagster as dg

from flowehr_pipelines.config import Settings

HEARTBEAT_JOB = "platform_heartbeat_job"
HEARTBEAT_SCHEDULE = "platform_heartbeat_schedule"


@dg.op
def heartbeat(context: dg.OpExecutionContext) -> None:
    """Nothing to do: reaching this op is the proof."""
    context.log.info("heartbeat: scheduler, run queue, launcher and code location work")


@dg.job(
    name=HEARTBEAT_JOB,
    executor_def=dg.in_process_executor,
    description="Touches no data; its success proves schedules launch runs end to end.",
    tags={"flowehr/kind": "heartbeat"},
)
def heartbeat_job() -> None:
    heartbeat()


def build_heartbeat_defs(settings: Settings) -> dg.Definitions:
    """The heartbeat job and its schedule (cron ``automation.heartbeat_cron``, UK time like
    every schedule)."""
    automation = settings.automation
    schedule = dg.ScheduleDefinition(
        name=HEARTBEAT_SCHEDULE,
        job=heartbeat_job,
        cron_schedule=automation.heartbeat_cron,
        execution_timezone=settings.reporting.timezone,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if automation.heartbeat_running
            else dg.DefaultScheduleStatus.STOPPED
        ),
        description="A heartbeat run; alert when none succeeded for two intervals.",
    )
    return dg.Definitions(jobs=[heartbeat_job], schedules=[schedule])
