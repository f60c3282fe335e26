"""A loopback PDS FHIR API and its OAuth token endpoint (127.0.0.1, a thread), for tests.

The token endpoint checks a client assertion as NHS England's does: the signature
against the registered JWKS (by ``kid``, RS512 only), ``iss`` = ``sub`` = the API key,
``aud`` = the token URL, ``exp`` present and at most five minutes ahead, and ``jti``
never seen before. ``GET /Patient/{nhsNumber}`` needs a token it issued, and answers
with full demographics (so tests can show none of them is kept), 404, 400, or 429.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

API_KEY = "test-api-key-abc"
KEY_ID = "test-kid-1"
PATIENT_PATH = "/personal-demographics/FHIR/R4/Patient/"


def new_private_key() -> tuple[str, dict[str, Any]]:
    """A PEM RSA private key and the JWKS that registers its public half under KEY_ID."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return pem, {"keys": [{**public, "kid": KEY_ID, "alg": "RS512", "use": "sig"}]}


@dataclass
class PdsServer:
    """State of the loopback PDS: patients, tokens, knobs and what it saw."""

    jwks: dict[str, Any]
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_url: str = ""
    token_lifetime: int = 599
    expected_aud: str | None = None
    throttle: dict[str, int] = field(default_factory=dict)
    """NHS number -> how many reads answer 429 first."""
    tokens: dict[str, float] = field(default_factory=dict)
    seen_jti: set[str] = field(default_factory=set)
    token_requests: int = 0
    refusals: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth2/token"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{PATIENT_PATH.removesuffix('/Patient/')}"

    def add(
        self,
        number: str,
        *,
        current: str | None = None,
        restricted: bool = False,
        deceased: bool = False,
    ) -> None:
        """A PDS record answering for ``number`` (under ``current`` when superseded)."""
        self.patients[number] = {
            "resourceType": "Patient",
            "id": current or number,
            "meta": {"versionId": "2", "security": [{"code": "R" if restricted else "U"}]},
            "name": [{"family": "Smythe-Quintana", "given": ["Ariadne"]}],
            "birthDate": "1931-07-14",
            "address": [{"postalCode": "ZZ9 9ZZ", "line": ["1 Nowhere Lane"]}],
            **({"deceasedDateTime": "2026-01-02T03:04:05+00:00"} if deceased else {}),
        }

    def check_assertion(self, form: dict[str, str]) -> str | None:
        """Why the token request is refused (None: it is good)."""
        if form.get("grant_type") != "client_credentials":
            return "grant_type"
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return "client_assertion_type"
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            match = [k for k in self.jwks["keys"] if k["kid"] == header.get("kid")]
            if not match:
                return "kid"
            claims = jwt.decode(
                assertion,
                jwt.PyJWK(match[0]).key,
                algorithms=["RS512"],
                audience=self.expected_aud or self.token_url,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.PyJWTError as exc:
            return type(exc).__name__
        if claims["iss"] != API_KEY or claims["sub"] != API_KEY:
            return "iss/sub"
        if claims["exp"] > time.time() + 300 + 5:
            return "exp too far"
        if claims["jti"] in self.seen_jti:
            return "jti replayed"
        self.seen_jti.add(claims["jti"])
        return None

    def token_ok(self, header: str | None) -> bool:
        token = (header or "").removeprefix("Bearer ")
        return self.tokens.get(token, 0) > time.time()


def _handler(server: PdsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path != "/oauth2/token":
                return self._send(404)
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            with server.lock:
                server.token_requests += 1
                reason = server.check_assertion(form)
                if reason is not None:
                    server.refusals.append(reason)
                    return self._send(
                        401, {"error": "invalid_request", "error_description": reason}
                    )
                token = secrets.token_urlsafe(24)
                server.tokens[token] = time.time() + server.token_lifetime
            self._send(
                200,
                {
                    "access_token": token,
                    "expires_in": str(server.token_lifetime),
                    "token_type": "Bearer",
                    "issued_at": str(int(time.time() * 1000)),
                },
            )

        def do_GET(self) -> None:
            if not self.path.startswith(PATIENT_PATH):
                return self._send(404)
            number = self.path.removeprefix(PATIENT_PATH)
            with server.lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                time.sleep(server.delay)
                self._patient(number)
            finally:
                with server.lock:
                    server.in_flight -= 1

        def _patient(self, number: str) -> None:
            if not self.headers.get("X-Request-ID"):
                return self._send(400, _outcome("MISSING_VALUE", "X-Request-ID"))
            if not server.token_ok(self.headers.get("Authorization")):
                return self._send(401, _outcome("ACCESS_DENIED", "invalid token"))
            with server.lock:
                server.reads.append(number)
                if server.throttle.get(number, 0) > 0:
                    server.throttle[number] -= 1
                    return self._send(
                        429, _outcome("TOO_MANY_REQUESTS", "slow down"), {"Retry-After": "0"}
                    )
            if not (number.isdigit() and len(number) == 10):
                return self._send(400, _outcome("INVALID_RESOURCE_ID", "bad id"))
            record = server.patients.get(number)
            if record is None:
                return self._send(404, _outcome("RESOURCE_NOT_FOUND", "not found"))
            self._send(200, record)

    return Handler


def _outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "details": {"coding": [{"code": code}]},
                "diagnostics": text,
            }
        ],
    }


@contextmanager
def pds_server(jwks: dict[str, Any]) -> Iterator[PdsServer]:
    """Serve a ``PdsServer`` on 127.0.0.1 until the block ends (then stop it)."""
    state = PdsServer(jwks=jwks)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
