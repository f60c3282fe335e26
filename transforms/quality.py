"""Data-quality measures shared by asset checks here and jobs on Databricks.

They return counts, never values: check metadata is shown in the UI, and the values
of a key column can be patient identifiers.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def duplicate_key_count(data: pa.Table, keys: list[str]) -> int:
    """How many rows share their key with an earlier row."""
    if data.num_rows == 0:
        return 0
    distinct = data.select(keys).group_by(keys).aggregate([]).num_rows
    return data.num_rows - distinct


def null_key_count(data: pa.Table, keys: list[str]) -> int:
    """How many rows have a null in any key column."""
    if data.num_rows == 0:
        return 0
    mask = pc.is_null(data[keys[0]])
    for key in keys[1:]:
        mask = pc.or_(mask, pc.is_null(data[key]))
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)
