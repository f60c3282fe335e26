"""The HTTP endpoint Prometheus scrapes: ``/metrics`` on 127.0.0.1 unless told otherwise.

Dagster OSS has no authentication and neither has this endpoint; keep it on the
loopback or a private network (docs/METRICS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from flowehr_pipelines.metrics.collector import InstanceCollector


class _QuietHandler(WSGIRequestHandler):
    """No access-log line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def build_registry(instance: Callable[[], Any], *, lookback: timedelta) -> CollectorRegistry:
    """A registry holding only the instance collector (no process metrics of this server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InstanceCollector(instance, lookback=lookback))
    return registry


def make_metrics_server(registry: CollectorRegistry, *, host: str, port: int) -> WSGIServer:
    """A WSGI server for the registry; the caller runs ``serve_forever`` and closes it."""
    return make_server(host, port, make_wsgi_app(registry), handler_class=_QuietHandler)
