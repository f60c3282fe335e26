"""Batch report rows are grouped in one pass, exactly as a per-batch filter selects them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from assets.reports.writing import _row_indices_by_batch


def test_row_indices_by_batch_match_an_equality_filter_per_batch() -> None:
    rows = pa.table(
        {
            "clientid": ["c1", "c2", "c1", None, "c1", "c2", "c1"],
            "requestid": ["r1", "r1", "r2", "r1", "r1", None, "r1"],
            "channel": ["SMS", "EMAIL", "LETTER", "SMS", "NHSAPP", "SMS", "EMAIL"],
        }
    )
    groups = _row_indices_by_batch(rows)
    for client, request in [("c1", "r1"), ("c2", "r1"), ("c1", "r2"), ("c2", "r2")]:
        mask = pc.and_(pc.equal(rows["requestid"], request), pc.equal(rows["clientid"], client))
        assert rows.take(pa.array(groups.get((client, request), []), pa.int64())).equals(
            rows.filter(mask)
        )
    assert groups[("c1", "r1")] == [0, 4, 6]
    assert all(None not in key for key in groups)  # null ids belong to no batch
