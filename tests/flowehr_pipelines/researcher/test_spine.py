"""Spine event times: each ISO 8601 value read on its own, never shifted by its neighbours."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from flowehr_pipelines.researcher.spine import load_spine, normalise_spine, parse_event_times


def spine(times: list[str | None]) -> pa.Table:
    return pa.table(
        {"visit_id": list(range(len(times))), "event_time": pa.array(times, pa.string())}
    )


def test_a_csv_column_mixing_offsets_and_none_reads_each_value_as_written(tmp_path) -> None:
    path = tmp_path / "spine.csv"
    path.write_text(
        "visit_id,event_time\n"
        "1,2026-03-01T10:00:00\n"
        "2,2026-03-01T10:00:00+05:00\n"
        "3,2026-03-01T10:00:00\n"
        "4,2026-07-01T10:00:00+01:00\n"
        "5,2026-07-01 10:00:00Z\n"
        "6,2026-07-01\n"
    )
    read = load_spine(path)
    times = normalise_spine(read, entity_key="visit_id", event_time="event_time")["event_time"]
    assert times.to_pylist() == [
        datetime(2026, 3, 1, 10, tzinfo=UTC),  # no offset: UTC
        datetime(2026, 3, 1, 5, tzinfo=UTC),
        datetime(2026, 3, 1, 10, tzinfo=UTC),  # not shifted by the row before
        datetime(2026, 7, 1, 9, tzinfo=UTC),
        datetime(2026, 7, 1, 10, tzinfo=UTC),
        datetime(2026, 7, 1, 0, tzinfo=UTC),
    ]
    assert times.type == pa.timestamp("us", tz="UTC")


def test_a_value_that_is_no_time_is_an_error_naming_its_row() -> None:
    with pytest.raises(ValueError, match=r"event_time, row 2: 'yesterday' is not an ISO 8601"):
        parse_event_times(["2026-03-01T10:00:00", "yesterday"], "event_time")


@pytest.mark.parametrize("missing", [None, "", "  "])
def test_a_row_without_a_time_is_refused(missing: str | None) -> None:
    with pytest.raises(ValueError, match="1 row\\(s\\) without a time"):
        normalise_spine(
            spine(["2026-03-01T10:00:00", missing]), entity_key="visit_id", event_time="event_time"
        )


def test_a_csv_column_all_with_offsets_is_converted_to_utc(tmp_path) -> None:
    path = tmp_path / "spine.csv"
    path.write_text("visit_id,event_time\n1,2026-07-01T10:00:00+01:00\n2,2026-07-01T10:00:00Z\n")
    read = load_spine(path)
    times = normalise_spine(read, entity_key="visit_id", event_time="event_time")["event_time"]
    assert times.to_pylist() == [
        datetime(2026, 7, 1, 9, tzinfo=UTC),
        datetime(2026, 7, 1, 10, tzinfo=UTC),
    ]
