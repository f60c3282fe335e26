"""The custom collector: every scrape reads the instance afresh.

A failing read (the instance's database down) must not fail the scrape: Prometheus
would only see the target as down. It is reported as ``flowehr_metrics_up 0`` with
the other families absent, so an alert can say what is wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flowehr_pipelines.metrics.assets import asset_metrics
from flowehr_pipelines.metrics.checks import check_metrics
from flowehr_pipelines.metrics.runs import run_metrics

log = logging.getLogger(__name__)


class InstanceCollector(Collector):
    """Run, asset and check metrics of one Dagster instance."""

    def __init__(
        self,
        instance: Callable[[], Any],
        *,
        lookback: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._instance = instance
        self._lookback = lookback
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        now = self._clock()
        try:
            instance = self._instance()
            families = [
                *run_metrics(instance, now=now, lookback=self._lookback),
                *asset_metrics(instance, now=now),
                *check_metrics(instance, now=now, lookback=self._lookback),
            ]
            up = 1.0
        except Exception:  # any storage failure: report it as a metric, log the detail
            log.exception("reading the Dagster instance failed")
            families, up = [], 0.0
        yield from families
        health = GaugeMetricFamily(
            "flowehr_metrics_up", "1 when the Dagster instance could be read at this scrape."
        )
        health.add_metric([], up)
        yield health
        duration = GaugeMetricFamily(
            "flowehr_metrics_scrape_duration_seconds", "Time taken to read the instance."
        )
        duration.add_metric([], time.perf_counter() - started)
        yield duration
