"""Training-set spines in (a file, pandas, polars or Arrow) and results out in the format a
researcher asks for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

POLARS_PIN = "polars==2.1.0"

_UTC = pa.timestamp("us", tz="UTC")


def convert(table: pa.Table, output: Output) -> Any:
    """Arrow to the requested frame type.

    Raises:
        ImportError: for Polars when it is not installed (with the pin to install).
        ValueError: for an unknown output.
    """
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    if output == "polars":
        try:
            import polars as pl
        except ImportError:
            raise ImportError(
                f"Polars output needs polars, which is not installed: pip install {POLARS_PIN}"
            ) from None
        return pl.from_arrow(table)
    raise ValueError(f"output must be pandas, polars or arrow, not {output!r}")


def load_spine(spine: Any) -> pa.Table:
    """A spine from pandas, Polars, Arrow, or a CSV/Parquet file, as Arrow."""
    if isinstance(spine, pa.Table):
        return spine
    if isinstance(spine, str | Path):
        path = Path(spine)
        if not path.exists():
            raise FileNotFoundError(f"spine file {path} does not exist")
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pa_csv

        return pa_csv.read_csv(path)
    if hasattr(spine, "to_arrow"):  # Polars
        return spine.to_arrow()
    import pandas as pd

    if isinstance(spine, pd.DataFrame):
        return pa.Table.from_pandas(spine, preserve_index=False)
    raise TypeError(f"cannot use a {type(spine).__name__} as a spine")


def parse_event_times(values: list[str | None], column: str) -> pa.Array:
    """ISO 8601 texts as UTC times, each value read on its own.

    A value with an offset is converted from it; one without an offset is UTC. Read one
    by one because a vectorised parse of a column that mixes the two (pandas'
    ``format="ISO8601"``) shifted every offset-less value after an offset one by that
    offset, silently. A value that is no ISO 8601 time is an error naming its row.
    """
    parsed: list[datetime | None] = []
    for row, text in enumerate(values, start=1):
        if text is None or not text.strip():
            parsed.append(None)
            continue
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(
                f"spine column {column}, row {row}: {text!r} is not an ISO 8601 time"
            ) from None
        parsed.append(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)
    return pa.array(parsed, type=_UTC)


def normalise_spine(spine: pa.Table, *, entity_key: str, event_time: str) -> pa.Table:
    """Type the spine's key like the feature tables' and its event time as UTC.

    Raises:
        ValueError: when a column is missing or an event time cannot be read.
    """
    missing = [c for c in (entity_key, event_time) if c not in spine.column_names]
    if missing:
        raise ValueError(f"the spine has no column(s) {', '.join(missing)}")
    key_type = pa.int64() if entity_key == "visit_id" else pa.string()
    key = spine[entity_key].cast(key_type)
    times = spine[event_time]
    if pa.types.is_string(times.type) or pa.types.is_large_string(times.type):
        times = pa.chunked_array([parse_event_times(times.to_pylist(), event_time)], type=_UTC)
    elif pa.types.is_date(times.type):
        times = times.cast(pa.timestamp("us")).cast(_UTC)
    elif pa.types.is_timestamp(times.type):
        if times.type.tz is None:
            times = pc.assume_timezone(times, "UTC")
        times = times.cast(_UTC)
    else:
        raise ValueError(f"spine column {event_time} is {times.type}, not a time")
    if times.null_count:
        raise ValueError(
            f"spine column {event_time} has {times.null_count} row(s) without a time: every "
            "row needs an event time"
        )
    spine = spine.set_column(spine.schema.get_field_index(entity_key), entity_key, key)
    return spine.set_column(spine.schema.get_field_index(event_time), event_time, times)


Output = Literal["pandas", "polars", "arrow"]
