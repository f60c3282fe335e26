"""Reporting jobs, schedules and sensors: cadence, landing sensor, report schedules, alerts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from assets.reporting.staging import REQUEST_ITEM_STATUS
from assets.reporting.watchdogs import WATCHDOG_CHECK_KEYS
from flowehr_pipelines.automation.alerts import (
    AlertDeliveryError,
    AlertWebhook,
    failed_check_lines,
    failed_checks_text,
    run_failure_text,
)
from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.automation.reporting import (
    BATCH_REPORT_JOB,
    BATCH_REPORT_SCHEDULE,
    COMMS_REPORT_JOB,
    COMMS_REPORT_SCHEDULE,
    HOUSEKEEPING_JOB,
    LANDING_SENSOR,
    REPORTING_JOB,
    WATCHDOG_JOB,
    landing_fingerprint,
)
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.definitions import defs
from tests.assets.reporting_world import Lake, item, lines
from tests.reporting_keys import (
    REPORTING_QUERY_KEYS,
    REPORTING_STAGING_KEYS,
    REPORTING_VIEW_KEYS,
)

CADENCE = {
    "reporting_ingestion_schedule": (REPORTING_JOB, "0 1,4,8-18 * * *"),
    "reporting_housekeeping_schedule": (HOUSEKEEPING_JOB, "0 2 * * *"),
    "reporting_watchdog_schedule": (WATCHDOG_JOB, "30 * * * *"),
    COMMS_REPORT_SCHEDULE: (COMMS_REPORT_JOB, "30 4 * * *"),
    BATCH_REPORT_SCHEDULE: (BATCH_REPORT_JOB, "30 1,4,8-18 * * *"),
}


@pytest.fixture
def definitions() -> dg.Definitions:
    return defs()


@pytest.fixture
def lake() -> Lake:
    return Lake.at(Path(load_settings().lake_root))


@pytest.mark.parametrize("name", sorted(CADENCE))
def test_schedule_runs_its_job_on_nhs_notify_cadence_in_london_time(definitions, name):
    schedule = definitions.resolve_schedule_def(name)
    job_name, cron = CADENCE[name]
    assert schedule.cron_schedule == cron
    assert schedule.execution_timezone == "Europe/London"
    assert schedule.job_name == job_name
    assert schedule.description


@pytest.mark.parametrize(
    "job_name", [REPORTING_JOB, HOUSEKEEPING_JOB, WATCHDOG_JOB, COMMS_REPORT_JOB, BATCH_REPORT_JOB]
)
def test_every_reporting_job_resolves_and_runs_in_process(definitions, job_name):
    assert definitions.resolve_job_def(job_name).executor_def.name == "in_process"


def test_jobs_split_the_graph_as_designed(definitions):
    def keys(job_name: str) -> set[str]:
        job = definitions.resolve_job_def(job_name)
        return {k.to_user_string() for k in job.asset_layer.selected_asset_keys}

    def checks(job_name: str) -> set[dg.AssetCheckKey]:
        return set(definitions.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys)

    assert keys(REPORTING_JOB) == {
        "bronze/transaction_history",
        *REPORTING_STAGING_KEYS,
        *REPORTING_VIEW_KEYS,
        *REPORTING_QUERY_KEYS,
    }
    assert not checks(REPORTING_JOB) & set(WATCHDOG_CHECK_KEYS)
    assert checks(WATCHDOG_JOB) == set(WATCHDOG_CHECK_KEYS)
    all_assets = keys(ALL_ASSETS_JOB)
    assert "reports/completed_comms_report" not in all_assets
    assert "reports/completed_batch_report" not in all_assets
    assert "internal/reporting_housekeeping" in all_assets
    assert not checks(ALL_ASSETS_JOB) & set(WATCHDOG_CHECK_KEYS)


def test_pass_two_depends_on_pass_one(definitions):
    graph = definitions.resolve_asset_graph()
    for summary, projection in (
        ("request_item_status_summary", "request_item_status"),
        ("request_item_plan_completed_summary", "request_item_plan_status"),
        ("request_item_status_summary_batch", "request_item_status"),
        ("request_item_plan_completed_summary_batch", "request_item_plan_status"),
    ):
        parents = graph.get(dg.AssetKey(["reporting", summary])).parent_keys
        assert dg.AssetKey(["reporting", projection]) in parents
    for projection in ("request_item_status", "request_item_plan_status", "client_latest_name"):
        parents = graph.get(dg.AssetKey(["reporting", projection])).parent_keys
        assert dg.AssetKey(["bronze", "transaction_history"]) in parents


# -- landing sensor ----------------------------------------------------------------------------


def evaluate_sensor(definitions, instance, cursor=None):
    sensor = definitions.resolve_sensor_def(LANDING_SENSOR)
    resources = {k: (definitions.resources or {})[k] for k in ("objects", "delta")}
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources, definitions=definitions
    )
    return sensor.evaluate_tick(context)


def test_landing_sensor_requests_one_run_per_new_file_set(definitions, lake):
    instance = dg.DagsterInstance.ephemeral()
    assert evaluate_sensor(definitions, instance).run_requests == []
    first = lake.land("part-1", lines([item("i1", datetime.now(UTC), "SENDING")]))
    tick = evaluate_sensor(definitions, instance)
    [request] = tick.run_requests
    assert request.run_key == f"landing-{landing_fingerprint([first])}"
    assert request.job_name in (None, REPORTING_JOB)
    # The same pending set is not requested again; a new file makes a new set.
    assert evaluate_sensor(definitions, instance, tick.cursor).run_requests == []
    second = lake.land("part-2", lines([item("i2", datetime.now(UTC), "SENDING")]))
    again = evaluate_sensor(definitions, instance, tick.cursor)
    [request2] = again.run_requests
    assert request2.run_key == f"landing-{landing_fingerprint([first, second])}"
    # Once ingested, nothing is pending.
    lake.ingest(datetime.now(UTC))
    assert evaluate_sensor(definitions, instance, again.cursor).run_requests == []


def test_landing_sensor_waits_while_an_ingestion_run_is_active(definitions, lake):
    instance = dg.DagsterInstance.ephemeral()
    lake.land("part-1", lines([item("i1", datetime.now(UTC), "SENDING")]))
    job = definitions.resolve_job_def(REPORTING_JOB)
    instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    tick = evaluate_sensor(definitions, instance)
    assert tick.run_requests == []
    assert "in progress" in (tick.skip_message or "")


# -- report schedules ----------------------------------------------------------------------------


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A persistent throwaway instance: schedule contexts need an instance reference."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


def schedule_tick(
    definitions: dg.Definitions, name: str, instance: dg.DagsterInstance, now: datetime
) -> dg.ScheduleExecutionData:
    """Evaluate a schedule as the daemon would; the context is closed so that the instance
    it opened does not linger as Dagster's current one."""
    resources = {k: (definitions.resources or {})[k] for k in ("objects", "delta")}
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=now, resources=resources
    ) as context:
        return definitions.resolve_schedule_def(name).evaluate_tick(context)


def test_report_schedules_request_due_partition_ranges(definitions, lake, instance):
    now = datetime.now(UTC)
    yesterday_noon = now - timedelta(days=1)
    done = now - timedelta(hours=5)
    lake.land(
        "items",
        lines(
            [
                item("a1", yesterday_noon, "DELIVERED", completed=yesterday_noon),
                item("b1", done, "DELIVERED", client="client-b", request="r-b", completed=done,
                     created=done - timedelta(minutes=5)),
            ]
        ),
        day=now.strftime("%Y/%m/%d"),  # the window runs over landing days
    )  # fmt: skip
    lake.cycle(now)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            REQUEST_ITEM_STATUS,
            metadata={"window_start": (now - timedelta(days=7)).date().isoformat()},
        )
    )
    comms = schedule_tick(definitions, COMMS_REPORT_SCHEDULE, instance, now)
    assert comms.run_requests, comms.skip_message
    [comms_request] = comms.run_requests
    assert comms_request.tags["dagster/asset_partition_range_start"].startswith("client-a|")
    assert comms_request.tags["dagster/asset_partition_range_end"].startswith("client-b|")
    batches = schedule_tick(definitions, BATCH_REPORT_SCHEDULE, instance, now)
    [batch_request] = batches.run_requests
    # Both batches completed (a1's yesterday, b1's five hours ago): one range, oldest first.
    assert batch_request.tags["dagster/asset_partition_range_start"] == "request-1"
    assert batch_request.tags["dagster/asset_partition_range_end"] == "r-b"
    # Running the requests writes the reports; the batch schedule then has nothing due.
    for job_name, request in ((COMMS_REPORT_JOB, comms_request), (BATCH_REPORT_JOB, batch_request)):
        result = definitions.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags=dict(request.tags)
        )
        assert result.success
    again = schedule_tick(definitions, BATCH_REPORT_SCHEDULE, instance, now)
    assert again.run_requests == [] and again.skip_message
    assert len(list(Path(lake.root, "reports").rglob("*.csv"))) == 4


def test_report_schedule_skips_without_clients(definitions, instance):
    tick = schedule_tick(definitions, COMMS_REPORT_SCHEDULE, instance, datetime.now(UTC))
    assert tick.run_requests == [] and "no clients" in (tick.skip_message or "")


# -- alerts --------------------------------------------------------------------------------------


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(
            {"body": json.loads(body), "content_type": self.headers["Content-Type"]}
        )
        self.send_response(Hook.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received, Hook.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_alert_webhook_posts_slack_compatible_json(webhook):
    assert AlertWebhook(url=webhook).send("watchdog: 3 flagged")
    assert Hook.received == [
        {"body": {"text": "watchdog: 3 flagged"}, "content_type": "application/json"}
    ]


def test_alert_webhook_error_is_one_clear_line(webhook):
    Hook.status = 500
    with pytest.raises(AlertDeliveryError, match="HTTP 500"):
        AlertWebhook(url=webhook).send("x")
    with pytest.raises(AlertDeliveryError, match="unreachable"):
        AlertWebhook(url="http://127.0.0.1:9/nothing", timeout_seconds=2).send("x")


def test_alert_without_webhook_logs_instead(caplog: pytest.LogCaptureFixture):
    with caplog.at_level("WARNING"):
        assert AlertWebhook().send("run FAILED") is False
    assert "run FAILED" in caplog.text


def failing_defs() -> dg.Definitions:
    @dg.asset(check_specs=[dg.AssetCheckSpec("overdue", asset="watched")])
    def watched() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="overdue",
                    passed=False,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"flagged": 4},
                )
            ]
        )

    @dg.asset
    def broken() -> None:
        raise ValueError("source unreachable\nsecond line")

    return dg.Definitions(assets=[watched, broken])


def test_alert_sensors_post_failed_checks_and_failed_runs(definitions, webhook, instance):
    demo = failing_defs()
    ok = dg.materialize([demo.assets[0]], instance=instance)  # type: ignore[index]
    assert ok.success
    assert failed_check_lines(instance, ok.run_id) == ["ERROR watched overdue: 4 flagged"]
    bad = dg.materialize([demo.assets[1]], instance=instance, raise_on_error=False)  # type: ignore[index]
    assert not bad.success

    alerts = AlertWebhook(url=webhook)
    checks_sensor = definitions.resolve_sensor_def("failed_check_alert")
    failure_sensor = definitions.resolve_sensor_def("run_failure_alert")
    success_event = next(e for e in ok.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    failure_event = next(e for e in bad.all_events if e.event_type_value == "PIPELINE_FAILURE")
    checks_sensor(
        dg.build_run_status_sensor_context(
            sensor_name="failed_check_alert",
            dagster_event=success_event,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(ok.run_id),
            resources={"alerts": alerts},
        )
    )
    failure_sensor(
        dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_event=failure_event,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(bad.run_id),
            resources={"alerts": alerts},
        ).for_run_failure()
    )
    texts = [r["body"]["text"] for r in Hook.received]
    assert len(texts) == 2
    assert "1 asset check(s) failed" in texts[0] and "ERROR watched overdue: 4 flagged" in texts[0]
    assert "run FAILED" in texts[1] and ok.run_id[:8] not in texts[1]
    assert bad.run_id[:8] in texts[1]


def test_alert_texts_name_env_job_run_and_counts_only():
    text = run_failure_text("prod", "reporting_job", "abcdef1234", "boom", ["ERROR a b: 2 flagged"])
    assert text.startswith("[FlowEHR prod] run FAILED: reporting_job (run abcdef12)")
    assert "• ERROR a b: 2 flagged" in text
    many = failed_checks_text("ci", "j", "r" * 10, [f"WARN x c{n}" for n in range(25)])
    assert "... and 5 more" in many


def test_alert_webhook_url_comes_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch, webhook
):
    from flowehr_pipelines.automation.alerts import build_alert_webhook

    monkeypatch.setenv("FLOWEHR_TEST_WEBHOOK", webhook)
    settings = load_settings()
    settings = settings.model_copy(
        update={
            "alerts": settings.alerts.model_copy(update={"webhook_url_env": "FLOWEHR_TEST_WEBHOOK"})
        }
    )
    resource = build_alert_webhook(settings)
    assert webhook not in repr(resource)  # an EnvVar, resolved at run time
    with dg.build_resources({"alerts": resource}) as built:
        assert built.alerts.send("hello")
    assert Hook.received[-1]["body"] == {"text": "hello"}


def test_automation_starts_stopped_unless_configured_running():
    from flowehr_pipelines.automation import reporting as reporting_automation

    settings = load_settings()
    stopped = reporting_automation.build_defs(settings)
    reporting = settings.reporting.model_copy(update={"automation_running": True})
    running = reporting_automation.build_defs(settings.model_copy(update={"reporting": reporting}))
    for defs_, status in ((stopped, "STOPPED"), (running, "RUNNING")):
        for schedule in defs_.schedules or []:
            assert schedule.default_status.value == status, schedule.name
        assert defs_.resolve_sensor_def(LANDING_SENSOR).default_status.value == status
        # Alerts only notify, so they are always on.
        assert defs_.resolve_sensor_def("run_failure_alert").default_status.value == "RUNNING"
