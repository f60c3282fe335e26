"""A loopback FHIR Bulk Data server (127.0.0.1, a thread) for tests.

It implements the kick-off / status / manifest / file flow of the Bulk Data Access IG
over a store of resources, with ``_since`` (resources whose lastUpdated is after it, and
deletions after it as transaction Bundles), ``_type``, an optional bearer token, and
knobs for the bad cases: a slow export, error files, extra lines in a file, a file
answering 500, a file cut short, and a manifest pointing at another host.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from transforms.fhir.ids import instant_micros, micros_instant


def now_micros() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


@dataclass
class Knobs:
    """Behaviour for the next exports (tests set these between runs)."""

    slow_polls: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    extra_lines: dict[str, list[str]] = field(default_factory=dict)
    failing_files: dict[str, int] = field(default_factory=dict)
    """resource type -> how many GETs of its file answer 500 (a large number: always)."""
    truncate: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    """Files whose connection drops halfway through the promised Content-Length."""
    outside_host: bool = False
    token: str | None = None
    transaction_text: str | None = None
    """Sent as the manifest's transactionTime instead of the real one."""
    clock_offset: int = 0
    """Microseconds added to the server's transaction times (a clock gone wrong)."""
    file_query: str = ""
    """Appended to file URLs, as a store's pre-signed query would be."""


@dataclass
class BulkServer:
    """The server's state: resources, deletions, jobs, and a log of requests."""

    resources: dict[tuple[str, str], tuple[dict[str, Any], int]] = field(default_factory=dict)
    deleted: dict[tuple[str, str], int] = field(default_factory=dict)
    knobs: Knobs = field(default_factory=Knobs)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, by_type: dict[str, list[dict[str, Any]]]) -> None:
        """Add resources as they are (their meta.lastUpdated is when they changed)."""
        for kind, items in by_type.items():
            for resource in items:
                stamp = instant_micros(resource["meta"]["lastUpdated"])
                self.resources[(kind, resource["id"])] = (resource, stamp)

    def put(self, resource: dict[str, Any]) -> None:
        """Create or update a resource now."""
        stamp = now_micros()
        resource = {
            **resource,
            "meta": {**resource.get("meta", {}), "lastUpdated": micros_instant(stamp)},
        }
        self.resources[(resource["resourceType"], resource["id"])] = (resource, stamp)

    def delete(self, kind: str, ident: str) -> None:
        self.resources.pop((kind, ident))
        self.deleted[(kind, ident)] = now_micros()

    def files_served(self) -> list[str]:
        return [path for method, path, _ in self.requests if "/files/" in path and method == "GET"]

    # -- jobs ---------------------------------------------------------------------------

    def start_job(self, types: list[str], since: int | None) -> str:
        job = f"job{len(self.jobs) + 1}"
        transaction = now_micros() + self.knobs.clock_offset
        files: dict[str, str] = {}
        for kind in types:
            lines = [
                json.dumps(resource)
                for (k, _), (resource, stamp) in sorted(self.resources.items())
                if k == kind and (since is None or stamp > since) and stamp <= transaction
            ]
            lines += self.knobs.extra_lines.get(kind, [])
            files[kind] = "".join(line + "\n" for line in lines)
        gone = [
            json.dumps(
                {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [{"request": {"method": "DELETE", "url": f"{k}/{i}"}}],
                }
            )
            for (k, i), stamp in sorted(self.deleted.items())
            if k in types and since is not None and stamp > since
        ]
        self.jobs[job] = {
            "transaction": transaction,
            "files": files,
            "deleted": "".join(line + "\n" for line in gone),
            "errors": "".join(json.dumps(e) + "\n" for e in self.knobs.errors),
            "polls": self.knobs.slow_polls,
        }
        return job

    def manifest(self, job: str) -> dict[str, Any]:
        state = self.jobs[job]
        host = "http://files.elsewhere.invalid" if self.knobs.outside_host else self.base_url
        url = f"{host}/fhir/files/{job}"
        return {
            "transactionTime": self.knobs.transaction_text or micros_instant(state["transaction"]),
            "request": f"{self.base_url}/fhir/$export",
            "requiresAccessToken": self.knobs.token is not None,
            "output": [
                {"type": kind, "url": f"{url}/{kind}.ndjson{self.knobs.file_query}"}
                for kind, body in state["files"].items()
                if body
            ],
            "deleted": [{"type": "Bundle", "url": f"{url}/deleted.ndjson"}]
            if state["deleted"]
            else [],
            "error": [{"type": "OperationOutcome", "url": f"{url}/errors.ndjson"}]
            if state["errors"]
            else [],
        }

    def file(self, job: str, name: str) -> str | None:
        state = self.jobs.get(job)
        if state is None:
            return None
        if name == "deleted":
            return state["deleted"]
        if name == "errors":
            return state["errors"]
        return state["files"].get(name)


def _handler(server: BulkServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            token = server.knobs.token
            return token is None or self.headers.get("Authorization") == f"Bearer {token}"

        def do_DELETE(self) -> None:
            with server.lock:
                server.requests.append(("DELETE", self.path, dict(self.headers)))
            job = urlsplit(self.path).path.rsplit("/", 1)[-1]
            server.jobs.pop(job, None)
            self._send(202)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            with server.lock:
                server.requests.append(("GET", self.path, dict(self.headers)))
            path = parts.path
            if path.endswith("/$export"):
                return self._kick_off(parse_qs(parts.query))
            if path.startswith("/fhir/status/"):
                return self._status(path.rsplit("/", 1)[-1])
            if path.startswith("/fhir/files/"):  # the query (a signature) is not checked
                _, _, _, job, name = path.split("/", 4)
                return self._file(job, name.removesuffix(".ndjson"))
            self._send(404)

        def _kick_off(self, query: dict[str, list[str]]) -> None:
            if not self._authorised():
                return self._send(401)
            if self.headers.get("Prefer") != "respond-async":
                return self._send(400, json.dumps(_outcome("Prefer: respond-async required")))
            types = query.get("_type", [""])[0].split(",")
            since = query.get("_since", [None])[0]
            job = server.start_job(types, instant_micros(since) if since else None)
            self._send(202, headers={"Content-Location": f"{server.base_url}/fhir/status/{job}"})

        def _status(self, job: str) -> None:
            if not self._authorised():
                return self._send(401)
            state = server.jobs.get(job)
            if state is None:
                return self._send(404, json.dumps(_outcome("no such job")))
            if state["polls"] > 0:
                state["polls"] -= 1
                return self._send(202, headers={"X-Progress": "exporting", "Retry-After": "1"})
            self._send(200, json.dumps(server.manifest(job)), {"Content-Type": "application/json"})

        def _file(self, job: str, name: str) -> None:
            if server.knobs.token is not None and not self._authorised():
                return self._send(401)
            if server.knobs.failing_files.get(name, 0) > 0:
                server.knobs.failing_files[name] -= 1
                return self._send(500, json.dumps(_outcome("storage unavailable")))
            body = server.file(job, name)
            if body is None:
                return self._send(404)
            if name in server.knobs.truncate:
                body = body[: len(body) - 40]
            if name in server.knobs.broken:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return None
            self._send(200, body, {"Content-Type": "application/fhir+ndjson"})

    return Handler


def _outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


@contextmanager
def bulk_server() -> Iterator[BulkServer]:
    """Serve a ``BulkServer`` on 127.0.0.1 until the block ends (then stop it)."""
    state = BulkServer()
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


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False
