"""The PDS FHIR API (Personal Demographics Service) in application-restricted mode.

Authentication is NHS England's signed JWT: an RS512 client assertion with ``kid`` in
the header, ``iss`` = ``sub`` = the application's API key, ``aud`` = the exact token URL,
a unique ``jti`` and ``exp`` at most five minutes ahead, exchanged for a bearer token
(``resources.client_assertion``), which is cached, refreshed a margin before it expires,
and refreshed once when PDS answers 401. The sandbox needs no authentication.

``verify`` reads ``GET /Patient/{nhsNumber}`` for each number with bounded concurrency,
a request rate limit, and retries with backoff on 429 and 5xx. Only the outcome of
each read is returned (``transforms.fhir.pds_outcome``). The private key, the API key
and tokens are never logged or put into an error.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg
import requests
from pydantic import Field, PrivateAttr

from resources.client_assertion import ClientAssertion, TokenCache, TokenError
from resources.http_retry import HttpFailure, RetryPolicy, send
from transforms.fhir.pds_outcome import PdsOutcome, outcome_of

PDS_ENVIRONMENTS: dict[str, tuple[str, str | None]] = {
    "sandbox": ("https://sandbox.api.service.nhs.uk/personal-demographics/FHIR/R4", None),
    "integration": (
        "https://int.api.service.nhs.uk/personal-demographics/FHIR/R4",
        "https://int.api.service.nhs.uk/oauth2/token",
    ),
    "production": (
        "https://api.service.nhs.uk/personal-demographics/FHIR/R4",
        "https://api.service.nhs.uk/oauth2/token",
    ),
}
"""Environment -> (PDS base URL, token URL); the sandbox is open access."""


class PdsError(RuntimeError):
    """PDS could not be used at all (one line; no key, API key or token in it)."""


@dataclass
class Verification:
    """Outcomes of the numbers PDS answered, and why the others failed (to retry)."""

    outcomes: list[PdsOutcome] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


class RateLimiter:
    """At most ``per_second`` request starts per second, shared by every worker."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


class PdsResource(dg.ConfigurableResource):
    """A PDS FHIR API client for one environment."""

    environment: Literal["sandbox", "integration", "production"] = "sandbox"
    base_url: str | None = Field(default=None, description="Overrides the environment's.")
    token_url: str | None = Field(default=None, description="Overrides the environment's.")
    api_key: str | None = Field(default=None, description="The application's API key.")
    private_key: str | None = Field(default=None, description="PEM RSA key for RS512.")
    key_id: str | None = None
    max_concurrency: int = 4
    requests_per_second: float = 5.0
    attempts: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 30.0
    token_refresh_margin_seconds: float = 60.0
    _session: requests.Session | None = PrivateAttr(default=None)
    _tokens: TokenCache | None = PrivateAttr(default=None)

    @property
    def patient_url(self) -> str:
        base = self.base_url or PDS_ENVIRONMENTS[self.environment][0]
        return base.rstrip("/") + "/Patient/"

    @property
    def resolved_token_url(self) -> str | None:
        return self.token_url or PDS_ENVIRONMENTS[self.environment][1]

    def _session_(self) -> requests.Session:
        if self._session is None:
            # One pooled connection per worker, so concurrent reads never queue for one.
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(10, self.max_concurrency))
            self._session = requests.Session()
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        return self._session

    def tokens(self) -> TokenCache | None:
        """The token cache (None for the open-access sandbox without a key)."""
        if self._tokens is None:
            token_url = self.resolved_token_url
            if token_url is None and not self.private_key:
                return None
            missing = [
                name
                for name, value in (
                    ("token URL", token_url),
                    ("API key", self.api_key),
                    ("private key", self.private_key),
                    ("key id (kid)", self.key_id),
                )
                if not value
            ]
            if missing:
                raise PdsError(f"PDS {self.environment}: {', '.join(missing)} not set")
            assertion = ClientAssertion(
                client_id=str(self.api_key),
                private_key=str(self.private_key),
                key_id=str(self.key_id),
                token_url=str(token_url),
                algorithm="RS512",
            )
            self._tokens = TokenCache(
                assertion,
                session=self._session_(),
                margin_seconds=self.token_refresh_margin_seconds,
                timeout_seconds=self.timeout_seconds,
            )
        return self._tokens

    def _read(self, nhs_number: str, limiter: RateLimiter) -> PdsOutcome | str:
        """One number's outcome, or the one-line reason it could not be read."""
        tokens = self.tokens()
        policy = RetryPolicy(
            attempts=self.attempts,
            backoff_seconds=self.backoff_seconds,
            timeout_seconds=self.timeout_seconds,
        )
        sent: list[str] = []

        def headers() -> dict[str, str]:
            limiter.wait()
            found = {"Accept": "application/fhir+json", "X-Request-ID": str(uuid.uuid4())}
            if tokens is not None:
                sent.append(tokens.token())
                found["Authorization"] = f"Bearer {sent[-1]}"
            return found

        url = self.patient_url + nhs_number
        response = send(self._session_(), "GET", url, policy=policy, headers=headers)
        if response.status_code == 401 and tokens is not None and sent:
            tokens.invalidate(sent[-1])
            response = send(self._session_(), "GET", url, policy=policy, headers=headers)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        outcome = outcome_of(nhs_number, response.status_code, body)
        return outcome if outcome is not None else f"HTTP {response.status_code}"

    def verify(
        self, nhs_numbers: Sequence[str], *, log: Callable[[str], None] = lambda _: None
    ) -> Verification:
        """Read each NHS number (ten digits) from PDS, a few at a time.

        Raises:
            PdsError: when no token can be had (the endpoint is down or refuses the key):
                nothing can be verified, so nothing is.
        """
        try:
            tokens = self.tokens()
            if tokens is not None:
                tokens.token()
        except TokenError as exc:
            raise PdsError(f"PDS {self.environment}: {exc}") from None
        limiter = RateLimiter(self.requests_per_second)
        result = Verification()

        def read(number: str) -> tuple[str, PdsOutcome | str]:
            try:
                return number, self._read(number, limiter)
            except (HttpFailure, TokenError) as exc:
                return number, str(exc).replace(number, "<nhs number>")

        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            for number, answer in pool.map(read, nhs_numbers):
                if isinstance(answer, PdsOutcome):
                    result.outcomes.append(answer)
                else:
                    result.failures[number] = answer
        log(f"PDS: {len(result.outcomes)} answered, {len(result.failures)} failed")
        return result
