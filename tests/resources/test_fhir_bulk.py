"""The Bulk Data client: kick-off URLs, origins, Retry-After, signed-assertion tokens."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from resources.fhir_bulk import FhirBulkDataResource, FhirExportError, origin
from resources.http_retry import RetryPolicy, retry_after_seconds
from tests.assets.fhir.fhir_world import client
from tests.fhir_server import bulk_server
from tests.pds_server import API_KEY, KEY_ID, new_private_key, pds_server


def bulk(**config: Any) -> FhirBulkDataResource:
    return FhirBulkDataResource(
        base_url="https://fhir.example.nhs.uk/R4/", resource_types=["Patient"], **config
    )


def test_kick_off_urls_follow_the_export_level() -> None:
    assert bulk().kickoff_url() == "https://fhir.example.nhs.uk/R4/$export"
    assert (
        bulk(export_level="patient").kickoff_url()
        == "https://fhir.example.nhs.uk/R4/Patient/$export"
    )
    assert bulk(export_level="group", group_id="g1").kickoff_url() == (
        "https://fhir.example.nhs.uk/R4/Group/g1/$export"
    )
    with pytest.raises(FhirExportError, match="group_id is unset"):
        bulk(export_level="group").kickoff_url()


def test_origins_compare_scheme_host_and_port() -> None:
    assert origin("HTTPS://Fhir.Example.nhs.uk/R4/x") == "https://fhir.example.nhs.uk"
    assert origin("https://fhir.example.nhs.uk:8443/") != origin("https://fhir.example.nhs.uk/")


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert RetryPolicy().attempts >= 2


def test_missing_credentials_are_named_without_values() -> None:
    with pytest.raises(FhirExportError, match="client_assertion' but token_url, key_id unset"):
        bulk(auth="client_assertion", client_id="c", private_key="secret-pem")._token()


def test_signed_assertion_tokens_authorise_the_export(tmp_path: Path) -> None:
    key, jwks = new_private_key()
    with pds_server(jwks) as tokens, bulk_server() as server:
        server.resources[("Patient", "1")] = ({"resourceType": "Patient", "id": "1"}, 1)
        fhir = client(
            server,
            resource_types=["Patient"],
            auth="client_assertion",
            token_url=tokens.token_url,
            client_id=API_KEY,
            private_key=key,
            key_id=KEY_ID,
            signing_algorithm="RS512",
        )
        spool = tmp_path / "spool"
        spool.mkdir()
        export = fhir.export(since=None, spool=spool)
        assert [f.path.read_text().count("\n") for f in export.files] == [1]
        sent = {h.get("Authorization", "").removeprefix("Bearer ") for _, _, h in server.requests}
        sent.discard("")
        assert len(sent) == 1 and sent <= set(tokens.tokens)
        assert tokens.token_requests == 1


def test_a_token_endpoint_that_is_down_fails_the_export_in_one_line(tmp_path: Path) -> None:
    key, _ = new_private_key()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/token"
    with bulk_server() as server:
        fhir = client(
            server,
            auth="client_assertion",
            token_url=closed,
            client_id="c",
            private_key=key,
            key_id="k",
        )
        with pytest.raises(FhirExportError) as error:
            fhir.export(since=None, spool=tmp_path)
    assert str(error.value) == f"token endpoint {closed} unreachable (ConnectionError)"
    assert server.requests == []
