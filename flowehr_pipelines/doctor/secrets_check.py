"""Every secret the config names is set; values are never read into a message."""

from __future__ import annotations

from flowehr_pipelines.config import EMBEDDED_ENVS, Settings
from flowehr_pipelines.doctor.findings import Finding, fail, ok
from resources.pseudonymiser import PSEUDONYMISATION_KEY_ENV

MIN_KEY_LENGTH = 16


def check_secrets(settings: Settings) -> list[Finding]:
    """One line per named secret: set or not (and the key long enough)."""
    findings = []
    for name in dict.fromkeys(settings.secret_names()):
        check = f"secret {name}"
        value = settings.secret(name)
        if name == PSEUDONYMISATION_KEY_ENV:
            findings.append(_pseudonymisation_key(settings, value))
        elif not value:
            findings.append(fail(check, f"not set ({_purpose(settings, name)})"))
        else:
            findings.append(ok(check, f"set ({_purpose(settings, name)})"))
    return findings


def _pseudonymisation_key(settings: Settings, value: str | None) -> Finding:
    check = f"secret {PSEUDONYMISATION_KEY_ENV}"
    if value:
        if len(value) < MIN_KEY_LENGTH:
            return fail(check, f"set but shorter than {MIN_KEY_LENGTH} characters")
        return ok(check, "set")
    if settings.env in EMBEDDED_ENVS:
        return ok(check, "not set: a generated local key is used (this machine only)")
    # The config check has already named it; the line is kept so every secret appears.
    return fail(check, f"not set; required in the '{settings.env}' environment")


def _purpose(settings: Settings, name: str) -> str:
    for connection in settings.data_source_connections:
        if connection.password_env == name:
            return f"password of source '{connection.name}'"
    if name in (settings.lake.s3.access_key_id_env, settings.lake.s3.secret_access_key_env):
        return "S3 credentials of the lake"
    if name == settings.alerts.webhook_url_env:
        return "alert webhook URL"
    if name == settings.databricks.token_env:
        return "Databricks token"
    return "named in the config"
