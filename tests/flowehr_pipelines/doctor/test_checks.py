"""The doctor's single checks: clock skew, time zone, Spark Connect, redaction, guards."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from flowehr_pipelines.config import Settings, load_settings
from flowehr_pipelines.doctor.clock import check_clock, check_timezone
from flowehr_pipelines.doctor.findings import Finding, guarded, redact
from flowehr_pipelines.doctor.network import check_spark
from flowehr_pipelines.doctor.sources import check_source

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_clock_fails_beyond_a_minute_of_skew_and_names_the_server() -> None:
    readings = [
        ("S3 endpoint", NOW - timedelta(seconds=2)),
        ("source ehr", NOW - timedelta(minutes=5)),
    ]
    finding = check_clock(readings, now=NOW)
    assert finding.failed
    assert "300s ahead of source ehr" in finding.detail


def test_clock_passes_within_a_minute() -> None:
    finding = check_clock([("S3 endpoint", NOW + timedelta(seconds=30))], now=NOW)
    assert finding.status == "ok"
    assert "S3 endpoint" in finding.detail


def test_an_unknown_time_zone_fails() -> None:
    assert check_timezone("Europe/Londres").failed
    assert check_timezone("Europe/London").status == "ok"


def test_spark_connect_is_checked_over_grpc(closed_port: int) -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = load_settings()
        reachable = check_spark(_with_remote(settings, f"sc://127.0.0.1:{port}"), timeout=3)
        closed = check_spark(_with_remote(settings, f"sc://127.0.0.1:{closed_port}"), timeout=1)
    finally:
        server.stop(grace=None)
    assert reachable.status == "ok", reachable.detail
    assert "gRPC channel ready" in reachable.detail
    assert closed.failed
    assert "no gRPC answer" in closed.detail


def _with_remote(settings: Settings, remote: str) -> Settings:
    spark = settings.spark.model_copy(update={"remote": remote})
    return settings.model_copy(update={"spark": spark})


def test_redact_masks_secret_values_in_any_message() -> None:
    findings = [Finding("source ehr", "fail", "password authentication failed: hunter22")]
    assert redact(findings, ["hunter22"])[0].detail == "password authentication failed: ***"


def test_guarded_turns_an_unexpected_error_into_one_failure_line() -> None:
    def explode() -> list[Finding]:
        raise RuntimeError("boom\nsecond line")

    assert guarded("lake", explode) == [Finding("lake", "fail", "RuntimeError: boom")]


def test_a_sql_server_source_without_its_driver_is_named_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if importlib.util.find_spec("pyodbc") is not None:
        pytest.skip("pyodbc is installed here")
    monkeypatch.setenv(
        "FLOWEHR_EHR_URL", "mssql+pyodbc://reader@127.0.0.1:1433/ehr?driver=ODBC+Driver+18"
    )
    settings = load_settings()
    findings = check_source(settings, settings.connection("ehr"), timeout=1, clock=[])
    assert [f.status for f in findings] == ["fail"]
    assert "missing driver" in findings[0].detail
    assert "pyodbc" in findings[0].detail
