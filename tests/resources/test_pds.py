"""The PDS client against a loopback PDS and token endpoint that check signed JWTs."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests

from resources import client_assertion
from resources import pds as pds_module
from resources.client_assertion import ClientAssertion, TokenCache, TokenError
from resources.pds import PDS_ENVIRONMENTS, PdsError, PdsResource
from tests.pds_server import API_KEY, KEY_ID, PdsServer, new_private_key, pds_server
from transforms.fhir.pds_outcome import PdsOutcome
from transforms.identifiers import nhs_number_check_digit


def nhs_number(n: int) -> str:
    """The n-th valid NHS number from 900000001 up."""
    while True:
        nine = f"{900000000 + n:09d}"
        digit = nhs_number_check_digit(nine)
        if digit is not None:
            return f"{nine}{digit}"
        n += 1000


@dataclass
class Pds:
    server: PdsServer
    key: str


@pytest.fixture(scope="module")
def keys() -> tuple[str, dict[str, Any]]:
    return new_private_key()


@pytest.fixture
def pds(keys: tuple[str, dict[str, Any]]) -> Iterator[Pds]:
    key, jwks = keys
    with pds_server(jwks) as server:
        yield Pds(server, key)


def client(pds: Pds, **overrides: Any) -> PdsResource:
    config: dict[str, Any] = {
        "environment": "integration",
        "base_url": pds.server.api_url,
        "token_url": pds.server.token_url,
        "api_key": API_KEY,
        "private_key": pds.key,
        "key_id": KEY_ID,
        "backoff_seconds": 0.01,
        "requests_per_second": 200.0,
        "timeout_seconds": 5.0,
        **overrides,
    }
    return PdsResource(**config)


def test_the_client_assertion_has_nhs_englands_claims(keys: tuple[str, dict[str, Any]]) -> None:
    key, jwks = keys
    assertion = ClientAssertion(
        API_KEY, key, KEY_ID, "https://int.api.service.nhs.uk/oauth2/token", "RS512"
    )
    first, second = assertion.sign(), assertion.sign()
    header = jwt.get_unverified_header(first)
    assert header["alg"] == "RS512" and header["kid"] == KEY_ID
    claims = jwt.decode(
        first,
        jwt.PyJWK(jwks["keys"][0]).key,
        algorithms=["RS512"],
        audience="https://int.api.service.nhs.uk/oauth2/token",
    )
    assert claims["iss"] == claims["sub"] == API_KEY
    assert 0 < claims["exp"] - time.time() <= 300
    assert claims["jti"] != jwt.decode(second, options={"verify_signature": False})["jti"]
    assert key not in repr(assertion)


def test_environments_name_the_nhs_api_platform_hosts() -> None:
    assert PdsResource(environment="production").resolved_token_url == (
        "https://api.service.nhs.uk/oauth2/token"
    )
    assert PdsResource(environment="integration").patient_url == (
        "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4/Patient/"
    )
    assert PDS_ENVIRONMENTS["sandbox"][1] is None
    assert PdsResource(environment="sandbox").tokens() is None


def test_verify_reports_each_outcome_and_retries_throttled_reads(pds: Pds) -> None:
    ok, old, new, hidden, dead, unknown = (nhs_number(i) for i in range(1, 7))
    pds.server.add(ok)
    pds.server.add(old, current=new)
    pds.server.add(hidden, restricted=True)
    pds.server.add(dead, deceased=True)
    pds.server.throttle[ok] = 2
    pds.server.delay = 0.1
    result = client(pds, max_concurrency=3).verify([ok, old, hidden, dead, unknown, "123"])
    assert result.failures == {}
    assert sorted(result.outcomes, key=lambda o: o.nhs_number) == sorted(
        [
            PdsOutcome(ok, "verified"),
            PdsOutcome(old, "superseded", superseded_by=new),
            PdsOutcome(hidden, "verified", restricted=True),
            PdsOutcome(dead, "verified", deceased=True),
            PdsOutcome(unknown, "not_found"),
            PdsOutcome("123", "invalid"),
        ],
        key=lambda o: o.nhs_number,
    )
    assert pds.server.reads.count(ok) == 3  # two 429s, then the answer
    assert pds.server.token_requests == 1  # one token, cached for every read
    assert 1 < pds.server.max_in_flight <= 3


def test_a_revoked_token_is_replaced_once_on_401(pds: Pds) -> None:
    number = nhs_number(11)
    pds.server.add(number)
    pds_client = client(pds)
    assert pds_client.verify([number]).outcomes == [PdsOutcome(number, "verified")]
    pds.server.tokens.clear()  # the platform revoked every token
    assert pds_client.verify([number]).outcomes == [PdsOutcome(number, "verified")]
    assert pds.server.token_requests == 2


def test_tokens_are_refreshed_a_margin_before_they_expire(pds: Pds) -> None:
    pds.server.token_lifetime = 600
    now = [1000.0]
    assertion = ClientAssertion(API_KEY, pds.key, KEY_ID, pds.server.token_url, "RS512")
    cache = TokenCache(
        assertion, session=requests.Session(), margin_seconds=60, clock=lambda: now[0]
    )
    first = cache.token()
    now[0] += 539  # a second before the margin
    assert cache.token() == first
    now[0] += 1  # 60 s before it expires: refreshed
    second = cache.token()
    assert second != first and cache.fetched == 2
    cache.invalidate(first)  # an old token's 401 does not drop the new one
    assert cache.token() == second
    cache.invalidate(second)
    assert cache.token() not in (first, second) and cache.fetched == 3


class SignedLongAgo(ClientAssertion):
    """Assertions signed as if 400 s ago: their five minutes are over."""

    def sign(self, *, now: float | None = None) -> str:
        return super().sign(now=time.time() - 400)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("aud", "InvalidAudienceError"),
        ("expired", "ExpiredSignatureError"),
        ("too_long", "exp too far"),
        ("kid", "kid"),
    ],
)
def test_the_token_endpoint_refuses_bad_assertions_and_the_client_says_so_in_one_line(
    pds: Pds,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    change: str,
    refusal: str,
) -> None:
    overrides: dict[str, Any] = {}
    if change == "aud":
        pds.server.expected_aud = "https://api.service.nhs.uk/oauth2/token"
    elif change == "kid":
        overrides["key_id"] = "not-registered"
    elif change == "expired":
        monkeypatch.setattr(pds_module, "ClientAssertion", SignedLongAgo)
    else:
        monkeypatch.setattr(client_assertion, "ASSERTION_LIFETIME_SECONDS", 3600)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PdsError) as error:
        client(pds, **overrides).verify([nhs_number(1)])
    message = str(error.value)
    assert message == (
        f"PDS integration: token endpoint {pds.server.token_url} refused the client "
        "assertion (HTTP 401: invalid_request)"
    )
    assert pds.server.refusals == [refusal]
    assert pds.server.reads == []
    assert "PRIVATE KEY" not in caplog.text and pds.key[40:80] not in caplog.text


def test_an_unsigned_assertion_is_refused(pds: Pds) -> None:
    unsigned = jwt.encode(
        {
            "iss": API_KEY,
            "sub": API_KEY,
            "aud": pds.server.token_url,
            "jti": "x",
            "exp": int(time.time()) + 60,
        },
        key="",
        algorithm="none",
        headers={"kid": KEY_ID},
    )
    answer = requests.post(
        pds.server.token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": client_assertion.CLIENT_ASSERTION_TYPE,
            "client_assertion": unsigned,
        },
        timeout=5,
    )
    assert answer.status_code == 401
    assert pds.server.refusals == ["InvalidAlgorithmError"]


def test_a_token_endpoint_that_is_down_is_one_line(pds: Pds) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/oauth2/token"
    with pytest.raises(PdsError) as error:
        client(pds, token_url=closed).verify([nhs_number(1)])
    assert str(error.value) == (
        f"PDS integration: token endpoint {closed} unreachable (ConnectionError)"
    )


def test_a_key_that_cannot_sign_is_reported_without_quoting_it() -> None:
    assertion = ClientAssertion(
        API_KEY, "-----BEGIN PRIVATE KEY-----\nnot a key", KEY_ID, "https://x/oauth2/token", "RS512"
    )
    with pytest.raises(TokenError) as error:
        assertion.sign()
    assert "not a key" not in str(error.value)
    assert str(error.value).startswith("the private key for https://x/oauth2/token cannot sign")
