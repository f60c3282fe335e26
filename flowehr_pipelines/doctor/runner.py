"""Run every preflight check and collect one finding per line, failures included.

A config problem does not stop the rest: when the config still validates (a missing
variable was substituted by an empty value), the checks that do not depend on the
missing value run; those that do are listed as skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial

from flowehr_pipelines.config import SettingsLoad, collect_settings
from flowehr_pipelines.config_loading import environment
from flowehr_pipelines.doctor.clock import check_clock, check_timezone
from flowehr_pipelines.doctor.findings import Finding, fail, guarded, ok, redact
from flowehr_pipelines.doctor.instance import check_instance
from flowehr_pipelines.doctor.lake import check_lake
from flowehr_pipelines.doctor.network import (
    check_databricks,
    check_spark,
    check_spark_session,
    check_webhook,
)
from flowehr_pipelines.doctor.secrets_check import check_secrets
from flowehr_pipelines.doctor.sources import check_source
from resources.pseudonymiser import PSEUDONYMISATION_KEY_ENV
from resources.settings import ConfigError


def run_doctor(
    env: Mapping[str, str] | None = None, *, timeout: float = 5.0, start_spark: bool = False
) -> list[Finding]:
    """Every check's findings, in a fixed order; never raises for a problem it finds.

    Args:
        env: the environment to read; defaults to the process environment.
        timeout: seconds allowed for each network connection.
        start_spark: also start a real Spark session and run a job.
    """
    env = environment() if env is None else env
    try:
        loaded = collect_settings(env)
    except ConfigError as exc:
        return [fail("config", " ".join(str(exc).split())), check_clock([], now=_now())]
    findings = _config_findings(loaded)
    settings = loaded.settings
    if settings is None:
        return [*findings, check_clock([], now=_now())]

    def step(check: str, prefix: str | None, run: Callable[[], Iterable[Finding]]) -> None:
        """Run a check unless a config key it depends on (``prefix``) was unresolved."""
        if prefix is not None and any(key.startswith(prefix) for key in loaded.unusable):
            findings.append(Finding(check, "skip", "its config is incomplete (see above)"))
        else:
            findings.extend(guarded(check, run))

    clock: list[tuple[str, datetime]] = []
    findings.extend(check_secrets(settings))
    for index, connection in enumerate(settings.data_source_connections):
        step(
            f"source {connection.name}",
            f"data_source_connections[{index}]",
            partial(check_source, settings, connection, timeout=timeout, clock=clock),
        )
    step("lake", "lake", lambda: [check_lake(settings, timeout=timeout, clock=clock)])
    step("dagster instance", None, lambda: [check_instance(settings, env, timeout=timeout)])
    step("spark", "spark", lambda: [check_spark(settings, timeout=timeout)])
    if start_spark:
        step("spark session", "spark", lambda: [check_spark_session(settings)])
    step("databricks", "databricks", lambda: _optional(check_databricks(settings, timeout=timeout)))
    step("webhook", "alerts", lambda: [check_webhook(settings, timeout=timeout)])
    findings.append(check_timezone(settings.reporting.timezone))
    findings.append(check_clock(clock, now=_now()))
    secrets = [settings.secret(name) or "" for name in settings.secret_names()]
    return redact(findings, secrets)


def _config_findings(loaded: SettingsLoad) -> list[Finding]:
    settings = loaded.settings
    problems = loaded.problems
    if settings is not None:
        # The secrets check names a missing pseudonymisation key on its own line.
        problems = [p for p in problems if not p.startswith(f"{PSEUDONYMISATION_KEY_ENV} ")]
    findings = [fail("config", problem) for problem in problems]
    if settings is not None and not findings:
        findings.append(ok("config", f"'{settings.env}' from {settings.config_dir} is valid"))
    return findings


def _optional(finding: Finding | None) -> list[Finding]:
    return [] if finding is None else [finding]


def _now() -> datetime:
    return datetime.now(UTC)
