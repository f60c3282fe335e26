"""Alerts: failed runs and failed asset checks, posted to a chat webhook.

Two run-status sensors watch every job of this code location: one fires when a run
fails, the other when a run succeeds but some of its asset checks failed (a watchdog
that found overdue communications, a warning-level quality check). Each posts one
message as ``{"text": ...}``, which Slack incoming webhooks and Microsoft Teams
connectors both accept. Dagster's run-status cursor means every run is announced
once. With no webhook configured the message is logged instead, so a development
machine needs no chat workspace.

The webhook URL is a secret (anyone holding it can post), so it is read from the
environment variable that ``alerts.webhook_url_env`` names, through ``dg.EnvVar``,
and never shown in the UI. Messages carry counts, names and run ids only: no
patient value, and no metadata other than the watchdog counts.
"""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from flowehr_pipelines.config import Settings

log = logging.getLogger(__name__)
MAX_CHECK_LINES = 20


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept an alert."""


class AlertWebhook(dg.ConfigurableResource):
    """Posts alert text to a Slack/Teams-compatible webhook, or logs it when none is set."""

    url: str | None = Field(default=None, description="Webhook URL; supply it as an EnvVar.")
    timeout_seconds: float = 10.0

    def send(self, text: str, logger: Any = None) -> bool:
        """Post ``{"text": text}``; returns False when there is no webhook (text is logged).

        Args:
            text: the message; counts and names only, never patient values.
            logger: where to log it when no webhook is set (default: this module's).

        Raises:
            AlertDeliveryError: when the webhook is unreachable or answers with an error.
        """
        if not self.url:
            (logger or log).warning(f"alert (no webhook configured): {text}")
            return False
        # urllib also opens file:// and other schemes; a webhook is HTTP(S) only.
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise AlertDeliveryError("alert webhook URL is not an http(s) URL")
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"text": text}).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(  # nosec B310: scheme checked above
                request, timeout=self.timeout_seconds
            ) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise AlertDeliveryError(f"alert webhook answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertDeliveryError(f"alert webhook unreachable: {reason}") from None
        if not 200 <= status < 300:
            raise AlertDeliveryError(f"alert webhook answered HTTP {status}")
        return True


def build_alert_webhook(settings: Settings) -> AlertWebhook:
    """The webhook from config: an environment variable (preferred) or a literal URL."""
    alerts = settings.alerts
    url: Any = dg.EnvVar(alerts.webhook_url_env) if alerts.webhook_url_env else alerts.webhook_url
    return AlertWebhook(url=url, timeout_seconds=alerts.timeout_seconds)


def failed_check_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """One line per failed asset check of a run: severity, asset, check, count."""
    lines = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        event = entry.dagster_event
        evaluation = event.event_specific_data if event is not None else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
            continue
        flagged = evaluation.metadata.get("flagged")
        count = f": {getattr(flagged, 'value', flagged)} flagged" if flagged is not None else ""
        lines.append(
            f"{evaluation.severity.value} {evaluation.asset_key.to_user_string()} "
            f"{evaluation.check_name}{count}"
        )
    return sorted(lines)


def _bullets(lines: Sequence[str]) -> str:
    shown = [f"• {line}" for line in lines[:MAX_CHECK_LINES]]
    if len(lines) > MAX_CHECK_LINES:
        shown.append(f"• ... and {len(lines) - MAX_CHECK_LINES} more")
    return "\n".join(shown)


def run_failure_text(env: str, job_name: str, run_id: str, error: str, checks: list[str]) -> str:
    text = f"[FlowEHR {env}] run FAILED: {job_name} (run {run_id[:8]})\n{error}"
    if checks:
        text += f"\nfailed checks:\n{_bullets(checks)}"
    return text


def failed_checks_text(env: str, job_name: str, run_id: str, checks: list[str]) -> str:
    return (
        f"[FlowEHR {env}] {len(checks)} asset check(s) failed in {job_name} "
        f"(run {run_id[:8]})\n{_bullets(checks)}"
    )


def _first_line(message: str | None) -> str:
    lines = (message or "").strip().splitlines()
    return lines[0] if lines else "no error message"


def build_defs(settings: Settings) -> dg.Definitions:
    """The two alert sensors and the webhook resource they post through."""
    env = settings.env

    @dg.run_failure_sensor(
        name="run_failure_alert",
        description="Posts every failed run of this code location to the alert webhook.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertWebhook) -> None:
        run = context.dagster_run
        error = context.failure_event.message if context.failure_event else None
        checks = failed_check_lines(context.instance, run.run_id)
        text = run_failure_text(env, run.job_name, run.run_id, _first_line(error), checks)
        alerts.send(text, context.log)

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="failed_check_alert",
        description="Posts the failed asset checks (watchdogs included) of successful runs.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def failed_check_alert(context: dg.RunStatusSensorContext, alerts: AlertWebhook) -> None:
        run = context.dagster_run
        checks = failed_check_lines(context.instance, run.run_id)
        if checks:
            alerts.send(failed_checks_text(env, run.job_name, run.run_id, checks), context.log)

    return dg.Definitions(
        sensors=[run_failure_alert, failed_check_alert],
        resources={"alerts": build_alert_webhook(settings)},
    )
