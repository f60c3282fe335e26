"""The collector in process: an unreadable instance is a metric, not a failed scrape."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flowehr_pipelines.metrics.assets import metadata_number
from flowehr_pipelines.metrics.server import build_registry


def _unreachable() -> Any:
    raise ConnectionError("could not connect to server: Connection refused")


def test_an_unreadable_instance_reports_up_zero_and_no_other_family() -> None:
    text = generate_latest(build_registry(_unreachable, lookback=timedelta(hours=1))).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert names == {"flowehr_metrics_up", "flowehr_metrics_scrape_duration_seconds"}
    assert "flowehr_metrics_up 0.0" in text


def test_only_numeric_metadata_counts_as_rows() -> None:
    assert metadata_number(dg.MetadataValue.int(7)) == 7.0
    assert metadata_number(3) == 3.0
    assert metadata_number(True) is None
    assert metadata_number(dg.MetadataValue.json({"a": 1})) is None
    assert metadata_number(None) is None
