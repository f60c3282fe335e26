"""The Dagster instance: its ``dagster.yaml`` is readable and its PostgreSQL answers.

Read without importing Dagster (which takes seconds): the file is YAML, its ``env:``
entries name environment variables, and a PostgreSQL login is one psycopg2 connect.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flowehr_pipelines.config import EMBEDDED_ENVS, Settings
from flowehr_pipelines.doctor.findings import Finding, fail, first_line, ok

_POSTGRES_KEYS = ("hostname", "port", "db_name", "username", "password")


def check_instance(settings: Settings, env: Mapping[str, str], *, timeout: float) -> Finding:
    check = "dagster instance"
    home = settings.dagster_home
    config_file = home / "dagster.yaml"
    if not config_file.exists():
        if settings.env in EMBEDDED_ENVS:
            return ok(check, f"{home}: Dagster's defaults (SQLite under DAGSTER_HOME)")
        return fail(check, f"{config_file} not found (copy deploy/dagster.yaml there)")
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        return fail(check, f"{config_file}: {first_line(exc)}")
    postgres = ((config.get("storage") or {}).get("postgres") or {}).get("postgres_db")
    if not postgres:
        return ok(check, f"{config_file}: no PostgreSQL storage configured")
    return _check_postgres(config_file, postgres, env, timeout=timeout)


def _check_postgres(
    config_file: Path, postgres: dict[str, Any], env: Mapping[str, str], *, timeout: float
) -> Finding:
    import psycopg2

    check = "dagster instance"
    values: dict[str, Any] = {}
    unset = []
    for key in _POSTGRES_KEYS:
        value = postgres.get(key)
        if isinstance(value, dict) and "env" in value:
            value = env.get(value["env"]) or None
            if value is None:
                unset.append(postgres[key]["env"])
        values[key] = value
    if unset:
        return fail(check, f"{config_file}: {', '.join(unset)} not set")
    try:
        connection = psycopg2.connect(
            host=values["hostname"],
            port=int(values["port"] or 5432),
            dbname=values["db_name"],
            user=values["username"],
            password=values["password"],
            connect_timeout=max(1, int(timeout)),
        )
        connection.close()
    except psycopg2.Error as exc:
        reason = first_line(exc)
        if values["password"]:
            reason = reason.replace(str(values["password"]), "***")
        return fail(check, f"PostgreSQL {values['hostname']}:{values['port']}: {reason}")
    where = f"{values['hostname']}:{values['port']}/{values['db_name']}"
    return ok(check, f"PostgreSQL {where} accepts the login")
