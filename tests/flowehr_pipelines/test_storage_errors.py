"""Storage errors that mean "no credentials" say what to set."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from flowehr_pipelines.storage_errors import NO_S3_CREDENTIALS, explain_storage_error

# delta-rs 1.6's error when the credential chain ends at the metadata service, as captured.
DELTA_RS_NO_CREDENTIALS = (
    "Generic S3 error\n"
    "  Error performing PUT http://169.254.169.254/latest/api/token in 2.3ms - "
    "Server returned non-2xx status code\n   403 Forbidden"
)


# The same from a read (DeltaTable.is_deltatable): the cause is below the first line.
DELTA_RS_READ_NO_CREDENTIALS = (
    "Operation not supported\n  an error occurred while loading credentials\n"
    "   failed to load IMDS session token\n    service error\n     request forbidden"
)


@pytest.mark.parametrize("message", [DELTA_RS_NO_CREDENTIALS, DELTA_RS_READ_NO_CREDENTIALS])
def test_delta_rs_metadata_service_errors_become_the_credentials_message(message: str) -> None:
    assert explain_storage_error(message) == NO_S3_CREDENTIALS


def test_botocore_without_credentials_becomes_the_credentials_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.Session().client(
        "s3",
        region_name="eu-west-2",
        endpoint_url="http://127.0.0.1:9",  # never reached: signing fails first
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(Exception) as error:
        client.list_objects_v2(Bucket="lake-bucket")
    assert explain_storage_error(f"{type(error.value).__name__}: {error.value}") == (
        NO_S3_CREDENTIALS
    )


def test_other_errors_keep_their_first_line() -> None:
    assert explain_storage_error("table not found\ndetails") == "table not found"
    assert explain_storage_error("") == ""
