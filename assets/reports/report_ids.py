"""Report paths and partition keys made from client-supplied ids, safe whatever the id is.

Client ids, request ids and request reference ids come from the CDC feed, so any text
can arrive: empty or null, ``.`` or ``..``, thousands of characters, a ``|``. Each
becomes a path segment of a report (docs/CONTRACTS.md §3) and the first two also a
Dagster partition key, and one bad id must not stop every other client's reports.

* A **path segment** is the id percent-encoded (``-``, ``_`` and ``.`` kept, ``~``
  encoded too). An id that cannot be a segment as it is (empty or null, ``.``, ``..``,
  or over ``MAX_SEGMENT_BYTES`` encoded) gets ``~none`` (empty or null) or ``~`` and
  the first 32 hex digits of its SHA-256: no encoded id starts with ``~``, so the safe
  names never collide with a real one.
* A **partition key** must be one Dagster accepts. An id it refuses is skipped: no
  partition, no report, a warning and a failed ``report_ids_usable`` check instead.

Dagster's rule for partition keys is not public API, so its forbidden substrings are
listed here (``dagster._core.definitions.partitions.utils``, 1.13) and a test compares.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

# Substrings Dagster refuses in any partition key; "|" separates multi-partition dimensions.
PARTITION_KEY_FORBIDDEN = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")
DIMENSION_SEPARATOR = "|"
# A file name holds at most 255 bytes; a report's adds a prefix, and a temp file's more.
MAX_SEGMENT_BYTES = 150
SAFE_NAME_PREFIX = "~"
EMPTY_SEGMENT = "~none"


def path_segment(value: str | None) -> str:
    """The path segment of an id: itself percent-encoded, or its documented safe name."""
    if value is None or value == "":
        return EMPTY_SEGMENT
    encoded = quote(value, safe="-_.").replace("~", "%7E")
    if value in (".", "..") or len(encoded.encode()) > MAX_SEGMENT_BYTES:
        return SAFE_NAME_PREFIX + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]
    return encoded


def partition_key_problem(value: str | None, *, dimension: bool = False) -> str | None:
    """Why Dagster would refuse an id as a partition key (or a dimension of one), else None."""
    if value is None or value == "":
        return "is empty"
    if dimension and DIMENSION_SEPARATOR in value:
        return "contains '|', which separates the dimensions of a partition key"
    for forbidden in PARTITION_KEY_FORBIDDEN:
        if forbidden in value:
            return f"contains {forbidden!r}"
    return None


def describe_id(value: str | None) -> str:
    """An id named without its value (it might be an identifier): hash prefix and length."""
    if value is None:
        return "a null id"
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]
    return f"id sha256:{digest} ({len(value):,} characters)"
