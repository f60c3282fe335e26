"""HTTP requests retried with backoff on the failures that are worth retrying.

Connection errors, timeouts, 429 and 5xx are transient at the NHS API platform and at
FHIR servers alike; everything else is an answer. ``Retry-After`` (seconds or an HTTP
date) is honoured up to a cap, otherwise the wait doubles from ``backoff_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def display_url(url: str) -> str:
    """A URL without its query and fragment, for messages and stored lineage.

    File stores hand out pre-signed URLs whose query is a credential.
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class HttpFailure(RuntimeError):
    """No usable answer after every attempt (one line: method, URL and the last failure)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request."""

    attempts: int = 4
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 60.0
    timeout_seconds: float = 60.0


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds from now (None when absent or unreadable)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    headers: Callable[[], Mapping[str, str]] = dict,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> requests.Response:
    """Send a request, retrying transient failures; the last response is returned as is.

    Args:
        session: the session to send on.
        method: the HTTP method.
        url: the URL.
        policy: attempts, backoff and timeout.
        headers: called before every attempt, so a refreshed token is picked up.
        sleep: how to wait (tests pass a fake).
        kwargs: passed to ``session.request``.

    Raises:
        HttpFailure: when every attempt failed to connect or timed out.
    """
    wait = policy.backoff_seconds
    failure = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            response = session.request(
                method, url, headers=dict(headers()), timeout=policy.timeout_seconds, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            failure = type(exc).__name__
            response = None
        if response is not None:
            if response.status_code not in RETRYABLE_STATUS or attempt == policy.attempts:
                return response
            failure = f"HTTP {response.status_code}"
            hinted = retry_after_seconds(response.headers.get("Retry-After"))
            response.close()
            if hinted is not None:
                wait = hinted
        if attempt < policy.attempts:
            sleep(min(wait, policy.max_wait_seconds))
            wait *= 2
    raise HttpFailure(f"{method} {display_url(url)} failed {policy.attempts} times ({failure})")
