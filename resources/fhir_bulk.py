"""A FHIR R4 Bulk Data Access ($export) client as a Dagster resource.

The flow is the HL7 Bulk Data Access IG's: kick off ``$export`` (system, ``Patient/`` or
``Group/<id>/``) with ``Prefer: respond-async`` and ``_outputFormat=
application/fhir+ndjson``, poll the ``Content-Location`` status URL (202 with
``X-Progress`` and ``Retry-After``, then 200 with the manifest), download every
``output``, ``deleted`` and ``error`` file into a spool directory, and, once the caller
has committed what they held, delete the job on the server.

Every file is downloaded before anything is committed, so a failed download leaves the
lake and the watermark as they were. A manifest naming a file outside the server's
origin (or ``allowed_file_origins``) is refused: its bearer token would go to that host.
Secrets (a static bearer token, or a private key for signed client assertions) come from
environment variables through ``dg.EnvVar`` and never appear in logs or errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import dagster as dg
import requests
from pydantic import Field, PrivateAttr

from resources.client_assertion import ClientAssertion, TokenCache, TokenError
from resources.fhir_export_files import ExportFile, download_files, manifest_files
from resources.http_retry import (
    HttpFailure,
    RetryPolicy,
    display_url,
    retry_after_seconds,
    send,
)
from resources.progress import Progress
from transforms.fhir.ids import instant_micros

NDJSON = "application/fhir+ndjson"


class FhirExportError(RuntimeError):
    """An export that could not complete; one line, never a token or key."""


@dataclass(frozen=True)
class ExportManifest:
    """A completed export: its transaction time and the downloaded files."""

    status_url: str
    transaction_time: str
    requires_access_token: bool
    files: list[ExportFile] = field(default_factory=list)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased (what a token may be sent to)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


class FhirBulkDataResource(dg.ConfigurableResource):
    """One FHIR server's Bulk Data export endpoint, its credentials and its limits."""

    base_url: str = Field(description="FHIR base URL, e.g. https://fhir.example.nhs.uk/R4")
    export_level: Literal["system", "patient", "group"] = "system"
    group_id: str | None = None
    resource_types: list[str] = Field(min_length=1)
    auth: Literal["none", "bearer", "client_assertion"] = "none"
    bearer_token: str | None = Field(default=None, description="Static token (auth: bearer).")
    token_url: str | None = None
    client_id: str | None = None
    private_key: str | None = Field(default=None, description="PEM key (auth: client_assertion).")
    key_id: str | None = None
    signing_algorithm: str = "RS384"
    scope: str | None = "system/*.read"
    allowed_file_origins: list[str] = Field(default_factory=list)
    poll_min_seconds: float = 1.0
    poll_max_seconds: float = 120.0
    export_timeout_seconds: float = 6 * 3600.0
    request_timeout_seconds: float = 60.0
    attempts: int = 4
    backoff_seconds: float = 1.0
    _session: requests.Session | None = PrivateAttr(default=None)
    _tokens: TokenCache | None = PrivateAttr(default=None)

    # -- plumbing -----------------------------------------------------------------------

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts,
            backoff_seconds=self.backoff_seconds,
            max_wait_seconds=self.poll_max_seconds,
            timeout_seconds=self.request_timeout_seconds,
        )

    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _token(self) -> str | None:
        if self.auth == "none":
            return None
        if self.auth == "bearer":
            if not self.bearer_token:
                raise FhirExportError("auth is 'bearer' but no bearer token is set")
            return self.bearer_token
        if self._tokens is None:
            missing = [
                name
                for name in ("token_url", "client_id", "private_key", "key_id")
                if not getattr(self, name)
            ]
            if missing:
                raise FhirExportError(f"auth is 'client_assertion' but {', '.join(missing)} unset")
            assertion = ClientAssertion(
                client_id=str(self.client_id),
                private_key=str(self.private_key),
                key_id=str(self.key_id),
                token_url=str(self.token_url),
                algorithm=self.signing_algorithm,
            )
            self._tokens = TokenCache(assertion, session=self.session(), scope=self.scope)
        return self._tokens.token()

    def _headers(
        self, accept: str, *, authorised: bool, extra: Mapping[str, str]
    ) -> Callable[[], dict[str, str]]:
        def build() -> dict[str, str]:
            headers = {"Accept": accept, **extra}
            token = self._token() if authorised else None
            if token:
                headers["Authorization"] = f"Bearer {token}"
            return headers

        return build

    def _request(
        self,
        method: str,
        url: str,
        *,
        accept: str = "application/fhir+json",
        authorised: bool = True,
        extra: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request with retries; a 401 with a signed-assertion token refreshes it once."""
        headers = self._headers(accept, authorised=authorised, extra=extra or {})
        try:
            response = send(
                self.session(), method, url, policy=self.policy, headers=headers, **kwargs
            )
            if response.status_code == 401 and self._tokens is not None:
                sent = str(response.request.headers.get("Authorization", ""))
                self._tokens.invalidate(sent.removeprefix("Bearer "))
                response = send(
                    self.session(), method, url, policy=self.policy, headers=headers, **kwargs
                )
        except (HttpFailure, TokenError) as exc:
            raise FhirExportError(str(exc)) from None
        return response

    def _check_origin(self, url: str, what: str) -> None:
        allowed = {origin(self.base_url), *(origin(o) for o in self.allowed_file_origins)}
        if origin(url) not in allowed:
            raise FhirExportError(
                f"the server's {what} {origin(url)} is outside {origin(self.base_url)}; "
                "refused (add it to allowed_file_origins if it is the server's file store)"
            )

    # -- the export ---------------------------------------------------------------------

    def kickoff_url(self) -> str:
        base = self.base_url.rstrip("/") + "/"
        if self.export_level == "patient":
            return urljoin(base, "Patient/$export")
        if self.export_level == "group":
            if not self.group_id:
                raise FhirExportError("export_level is 'group' but group_id is unset")
            return urljoin(base, f"Group/{self.group_id}/$export")
        return urljoin(base, "$export")

    def kick_off(self, since: str | None) -> str:
        """Start an export; returns the status URL (``Content-Location``).

        Raises:
            FhirExportError: when the server does not accept the kick-off.
        """
        params = {"_outputFormat": NDJSON, "_type": ",".join(self.resource_types)}
        if since is not None:
            params["_since"] = since
        url = self.kickoff_url()
        response = self._request("GET", url, params=params, extra={"Prefer": "respond-async"})
        if response.status_code != 202 or not response.headers.get("Content-Location"):
            raise FhirExportError(
                f"kick-off at {display_url(url)} answered HTTP {response.status_code}"
                f"{_outcome(response)}, not 202 with a Content-Location"
            )
        status_url = urljoin(url, response.headers["Content-Location"])
        self._check_origin(status_url, "status URL")
        return status_url

    def wait_for_manifest(
        self,
        status_url: str,
        *,
        log: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll until the export completes; returns the manifest.

        Raises:
            FhirExportError: on an error status, or when ``export_timeout_seconds`` pass
                (the job is then cancelled on the server).
        """
        deadline = time.monotonic() + self.export_timeout_seconds
        while True:
            response = self._request("GET", status_url, accept="application/json")
            if response.status_code == 200:
                try:
                    manifest = response.json()
                except ValueError:
                    raise FhirExportError(
                        f"the manifest at {display_url(status_url)} is not JSON"
                    ) from None
                if not isinstance(manifest, dict):
                    raise FhirExportError(
                        f"the manifest at {display_url(status_url)} is not a JSON object"
                    )
                return manifest
            if response.status_code != 202:
                raise FhirExportError(
                    f"export status {display_url(status_url)} answered HTTP {response.status_code}"
                    f"{_outcome(response)}"
                )
            log(f"export in progress: {response.headers.get('X-Progress', 'no progress given')}")
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            wait = min(
                max(wait if wait is not None else 0.0, self.poll_min_seconds), self.poll_max_seconds
            )
            if time.monotonic() + wait > deadline:
                self.cancel(status_url)
                raise FhirExportError(
                    f"export still running after {self.export_timeout_seconds:g} s; cancelled"
                )
            sleep(wait)

    def cancel(self, status_url: str) -> None:
        """Delete the export job on the server (best effort: the server expires it anyway)."""
        try:
            self._request("DELETE", status_url).close()
        except FhirExportError:
            pass

    def export(
        self,
        *,
        since: str | None,
        spool: Path,
        log: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
    ) -> ExportManifest:
        """Run an export to completion and download every file it lists into ``spool``.

        Args:
            since: the ``_since`` instant (None: everything).
            spool: an empty directory for the downloaded files.
            log: progress lines (never secrets).
            sleep: how to wait between polls.
            progress: counts the files downloaded, for the step's progress lines.

        Raises:
            FhirExportError: on any failure; nothing has been committed then.
        """
        status_url = self.kick_off(since)
        manifest = self.wait_for_manifest(status_url, log=log, sleep=sleep)
        transaction_time = str(manifest.get("transactionTime"))
        try:
            instant_micros(transaction_time)
        except ValueError:
            raise FhirExportError(
                f"the manifest at {display_url(status_url)} has no valid transactionTime "
                "(an instant)"
            ) from None
        try:
            files = manifest_files(manifest, spool)
        except ValueError as exc:
            raise FhirExportError(f"the manifest at {display_url(status_url)}: {exc}") from None
        for file in files:
            self._check_origin(file.url, "file URL")
        needs_token = bool(manifest.get("requiresAccessToken", False))
        if progress is not None:
            progress.stage("downloading", total=len(files), unit="files")
        try:
            download_files(
                files,
                fetch=lambda url: self._request(
                    "GET", url, accept=NDJSON, stream=True, authorised=needs_token
                ),
                on_file=progress.advance if progress is not None else None,
            )
        except ValueError as exc:
            raise FhirExportError(str(exc)) from None
        return ExportManifest(status_url, transaction_time, needs_token, files)


def _outcome(response: requests.Response) -> str:
    """The first OperationOutcome diagnostics of an error answer, shortened."""
    try:
        body: Mapping[str, Any] = response.json()
        issue = (body.get("issue") or [{}])[0]
        text = issue.get("diagnostics") or issue.get("code") or ""
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    text = " ".join(str(text).split())[:200]
    return f": {text}" if text else ""
