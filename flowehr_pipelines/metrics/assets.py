"""Per asset: how long since its last materialisation, and the rows that one moved.

Row counts come from the materialisation's metadata, under the names the assets
write (bronze loads, silver syncs, feature and reporting merges, CDC ingestion).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily

ROW_METADATA = {
    "rows_inserted": "inserted",
    "records_ingested": "inserted",
    "rows_updated": "updated",
    "rows_deleted": "deleted",
    "rows_quarantined": "quarantined",
    "quarantined_rows": "quarantined",
    "records_quarantined": "quarantined",
    "quarantined_lines": "quarantined",
    "rows_written": "written",
}
TABLE_ROWS = "dagster/row_count"


def asset_metrics(instance: Any, *, now: datetime) -> Iterator[GaugeMetricFamily]:
    """Freshness lag and row counts of every asset the instance has materialised."""
    last = GaugeMetricFamily(
        "flowehr_asset_last_materialization_timestamp_seconds",
        "When the asset was last materialised, Unix time.",
        labels=["asset"],
    )
    lag = GaugeMetricFamily(
        "flowehr_asset_freshness_lag_seconds",
        "Seconds since the asset was last materialised.",
        labels=["asset"],
    )
    rows = GaugeMetricFamily(
        "flowehr_asset_rows",
        "Rows the last materialisation inserted, updated, deleted, quarantined or wrote.",
        labels=["asset", "kind"],
    )
    table_rows = GaugeMetricFamily(
        "flowehr_asset_table_rows",
        "Rows in the table after its last materialisation.",
        labels=["asset"],
    )
    for record in instance.get_asset_records():
        entry = record.asset_entry.last_materialization
        if entry is None:
            continue
        asset = record.asset_entry.asset_key.to_user_string()
        last.add_metric([asset], entry.timestamp)
        lag.add_metric([asset], max(0.0, now.astimezone(UTC).timestamp() - entry.timestamp))
        materialization = entry.asset_materialization
        metadata = materialization.metadata if materialization is not None else {}
        kinds: dict[str, float] = {}
        for name, kind in ROW_METADATA.items():
            value = metadata_number(metadata.get(name))
            if value is not None:
                kinds[kind] = kinds.get(kind, 0.0) + value
        for kind, value in sorted(kinds.items()):
            rows.add_metric([asset, kind], value)
        total = metadata_number(metadata.get(TABLE_ROWS))
        if total is not None:
            table_rows.add_metric([asset], total)
    yield from (last, lag, rows, table_rows)


def metadata_number(value: Any) -> float | None:
    """A numeric metadata value as a float; None for text, JSON, booleans or absence."""
    raw = getattr(value, "value", value)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)
