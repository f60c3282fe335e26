"""``flowehr doctor`` end to end: every problem of a broken deployment in one run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowehr_pipelines.cli import main
from tests.conftest import TEST_KEY
from tests.flowehr_pipelines.doctor.conftest import rename_column

PASSWORD = "s3cr3t-password-value"
TOKEN = "dapi-secret-token-value"


def _doctor(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["doctor", "--timeout", "2", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output.splitlines()


def _lines(lines: list[str], status: str, check: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{status:<4}  {check}:")]


def test_doctor_passes_on_the_embedded_ci_setup(ehr_db: Path) -> None:
    code, lines = _doctor()
    assert code == 0, "\n".join(lines)
    assert _lines(lines, "OK", "source ehr")
    assert _lines(lines, "OK", "lake")
    assert lines[-1].startswith("all ") and lines[-1].endswith(" checks passed")


def test_doctor_names_a_missing_table_and_key_column_at_once(ehr_db: Path) -> None:
    rename_column(ehr_db, "visits", "visit_id")
    rename_column(ehr_db, "observations", "change_seq")
    code, lines = _doctor()
    assert code == 2
    failures = _lines(lines, "FAIL", "source ehr")
    assert any("'visits' has no primary-key column(s) ['visit_id']" in f for f in failures)
    assert any("'observations' has no change column 'change_seq'" in f for f in failures)


def test_doctor_on_a_broken_prod_config_prints_every_problem_in_one_run(
    prod_config: Path, tmp_path: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    (prod_config / "config.local.yaml").write_text(
        "reporting:\n  projection_window_dayz: 3\n"
        "alerts:\n  webhook_url_env: ALERT_WEBHOOK_URL\n"
        "lake:\n  s3:\n    allow_http: true\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("FLOWEHR_PSEUDONYMISATION_KEY")
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.setenv("FLOWEHR_LAKE_BUCKET", "lake-bucket")
    monkeypatch.setenv("FLOWEHR_S3_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("EHR_DB_USER", "reader")
    monkeypatch.setenv("EHR_DB_HOST", "127.0.0.1")
    monkeypatch.setenv("EHR_DB_PASSWORD", PASSWORD)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{closed_port}/hook?t={TOKEN}")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    code, lines = _doctor()
    output = "\n".join(lines)
    assert code == 2
    assert PASSWORD not in output and TOKEN not in output
    config = _lines(lines, "FAIL", "config")
    assert any("projection_window_dayz" in line for line in config)
    assert any("DATABRICKS_HOST" in line for line in config)
    assert _lines(lines, "FAIL", "secret FLOWEHR_PSEUDONYMISATION_KEY")
    assert _lines(lines, "OK", "secret EHR_DB_PASSWORD")
    # The source's url points at 127.0.0.1:5432; with no server there it cannot connect.
    assert _lines(lines, "FAIL", "source ehr")
    assert "no S3 credentials found" in _lines(lines, "FAIL", "lake")[0]
    assert "dagster.yaml not found" in _lines(lines, "FAIL", "dagster instance")[0]
    assert _lines(lines, "SKIP", "databricks")
    assert f"127.0.0.1:{closed_port} unreachable" in _lines(lines, "FAIL", "webhook")[0]
    assert len([line for line in lines if line.startswith("FAIL")]) == 7


def test_doctor_checks_an_s3_lake_with_credentials_and_conditional_writes(
    prod_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import boto3

    from tests.s3_server import moto_server

    (prod_config / "config.local.yaml").write_text(
        "compute: local\n"
        "lake:\n  s3:\n    allow_http: true\n"
        "    access_key_id_env: LAKE_KEY_ID\n    secret_access_key_env: LAKE_SECRET\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
    for name in ("EHR_DB_USER", "EHR_DB_HOST"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("FLOWEHR_LAKE_BUCKET", "lake-bucket")
    monkeypatch.setenv("LAKE_KEY_ID", "testing")
    monkeypatch.setenv("LAKE_SECRET", "testing-secret")
    with moto_server() as endpoint:
        monkeypatch.setenv("FLOWEHR_S3_ENDPOINT", endpoint)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="eu-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing-secret",
        )
        s3.create_bucket(
            Bucket="lake-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        code, lines = _doctor()
        leftovers = s3.list_objects_v2(Bucket="lake-bucket").get("KeyCount")
    assert code == 2  # the source (x:5432) and the instance are not there
    lake = _lines(lines, "OK", "lake")
    assert lake == ["OK    lake: s3://lake-bucket/flowehr writable; conditional writes honoured"]
    assert "within 60s of S3 endpoint" in _lines(lines, "OK", "clock")[0]
    assert leftovers == 0


def test_doctor_spark_starts_a_session_runs_a_job_and_stops(ehr_db: Path) -> None:
    # In its own process: stopping a session here would stop the suite's shared one.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from flowehr_pipelines.cli import main; main()",
            "doctor",
            "--spark",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK    spark session: started and ran a job (3 rows), then stopped" in result.stdout


def test_flowehr_run_on_an_s3_lake_without_credentials_says_what_to_set(
    prod_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (prod_config / "config.local.yaml").write_text("compute: local\n", encoding="utf-8")
    monkeypatch.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
    for name in ("EHR_DB_USER", "EHR_DB_HOST", "FLOWEHR_LAKE_BUCKET", "DATABRICKS_HOST"):
        monkeypatch.setenv(name, "x")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: s3://x/flowehr: no S3 credentials found: set lake.s3.access_key_id_env and "
        "lake.s3.secret_access_key_env, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an AWS "
        "profile or an instance role"
    ]
