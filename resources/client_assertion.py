"""OAuth 2.0 client credentials with a signed JWT client assertion (RFC 7523).

NHS England's application-restricted APIs (PDS among them) and SMART Backend Services
FHIR servers both authenticate a system this way: the client signs a short-lived JWT
with its private key (the public half is registered as a JWKS under ``kid``) and
exchanges it at the token endpoint for a bearer token. Tokens are cached until a safety
margin before they expire, and dropped when an API answers 401.

Neither the private key nor any token is ever logged or put into an error message:
errors name the token URL and the HTTP status only.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
import requests

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 300
"""NHS England refuses assertions whose ``exp`` is more than five minutes ahead."""


class TokenError(RuntimeError):
    """The token endpoint could not be reached or refused the assertion (one line)."""


@dataclass(frozen=True)
class ClientAssertion:
    """What signs an assertion: who the client is, its key, and where tokens come from."""

    client_id: str
    private_key: str = field(repr=False)
    key_id: str
    token_url: str
    algorithm: str = "RS512"

    def sign(self, *, now: float | None = None) -> str:
        """A fresh assertion: ``iss`` = ``sub`` = the client id, ``aud`` = the token URL.

        Raises:
            TokenError: when the private key cannot sign (never quoting the key).
        """
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "jti": str(uuid.uuid4()),
            "exp": issued + ASSERTION_LIFETIME_SECONDS,
        }
        try:
            return jwt.encode(
                claims,
                self.private_key,
                algorithm=self.algorithm,
                headers={"kid": self.key_id, "typ": "JWT"},
            )
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise TokenError(
                f"the private key for {self.token_url} cannot sign {self.algorithm} "
                f"assertions ({type(exc).__name__})"
            ) from None


class TokenCache:
    """One bearer token at a time, refreshed a margin before it expires or on demand."""

    def __init__(
        self,
        assertion: ClientAssertion,
        *,
        session: requests.Session,
        margin_seconds: float = 60.0,
        timeout_seconds: float = 30.0,
        scope: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._assertion = assertion
        self._session = session
        self._margin = margin_seconds
        self._timeout = timeout_seconds
        self._scope = scope
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetched = 0

    def token(self) -> str:
        """A valid bearer token, fetched when none is cached or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._margin:
                self._token, lifetime = self._fetch()
                self._expires_at = self._clock() + lifetime
                self.fetched += 1
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (an API answered 401), unless a newer one replaced it already."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> tuple[str, float]:
        url = self._assertion.token_url
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self._assertion.sign(),
        }
        if self._scope:
            form["scope"] = self._scope
        try:
            response = self._session.post(url, data=form, timeout=self._timeout)
        except requests.RequestException as exc:
            raise TokenError(f"token endpoint {url} unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise TokenError(
                f"token endpoint {url} refused the client assertion (HTTP "
                f"{response.status_code}{_oauth_error(response)})"
            )
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"token endpoint {url} sent no access_token") from None
        if not isinstance(token, str) or not token:
            raise TokenError(f"token endpoint {url} sent no access_token")
        return token, lifetime


def _oauth_error(response: requests.Response) -> str:
    """The RFC 6749 ``error`` code of a refusal (a fixed vocabulary, safe to show)."""
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {code}" if isinstance(code, str) and code.replace("_", "").isalnum() else ""
