"""Which visits a changelog load touched, found from per-visit input fingerprints.

Silver rows carry the source's ``change_seq``: one global, ever-increasing number
stamped on every insert and update. For each visit we keep the count, maximum and sum
of the ``change_seq`` of every input row that feeds its features (its visit row, its
observations, its labs, its patient row ...). Any change to those rows moves the
fingerprint: an insert or update brings a ``change_seq`` greater than any before
(the maximum rises), a delete removes one (the count falls). Comparing today's
fingerprints with the stored ones therefore gives exactly the visits to recompute,
including visits whose rows were deleted and visits that no longer exist, without
trusting that silver is written by MERGE rather than rebuilt.

The stored fingerprints live in ``internal/feature_state/<table>`` and are replaced
only after the feature table has committed, so a crash recomputes, never skips.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

FINGERPRINT_COLUMNS: tuple[str, ...] = (
    "source_rows",
    "source_max_change_seq",
    "source_sum_change_seq",
)
STATE_COLUMNS: tuple[str, ...] = ("visit_id", *FINGERPRINT_COLUMNS, "signature")


def visit_fingerprints(visits: DataFrame, *parts: DataFrame) -> DataFrame:
    """Fingerprint each current visit from its own row and its rows in ``parts``.

    Args:
        visits: silver visits (``visit_id``, ``change_seq``).
        parts: frames of ``visit_id`` and ``change_seq`` for the other inputs (rows of
            visits that no longer exist are ignored).

    Returns:
        ``visit_id`` and the fingerprint columns, one row per visit.
    """
    stacked = visits.select("visit_id", F.col("change_seq").cast("long").alias("change_seq"))
    for part in parts:
        stacked = stacked.unionByName(
            part.select("visit_id", F.col("change_seq").cast("long").alias("change_seq"))
        )
    return (
        stacked.join(visits.select("visit_id").distinct(), on="visit_id", how="left_semi")
        .groupBy("visit_id")
        .agg(
            F.count(F.lit(1)).cast("long").alias("source_rows"),
            F.max("change_seq").cast("long").alias("source_max_change_seq"),
            F.sum("change_seq").cast("long").alias("source_sum_change_seq"),
        )
    )


def person_fingerprints(visits: DataFrame, *parts: DataFrame) -> DataFrame:
    """Give every visit the fingerprint of all its patient's visits together.

    For features that look across a patient's visits (a readmission label depends on
    the next visit), any change to one visit must recompute them all.
    """
    per_visit = visit_fingerprints(visits, *parts)
    people = visits.select("visit_id", "person_key")
    per_person = (
        per_visit.join(people, on="visit_id")
        .groupBy("person_key")
        .agg(
            F.sum("source_rows").cast("long").alias("source_rows"),
            F.max("source_max_change_seq").cast("long").alias("source_max_change_seq"),
            F.sum("source_sum_change_seq").cast("long").alias("source_sum_change_seq"),
        )
    )
    return people.join(per_person, on="person_key").select("visit_id", *FINGERPRINT_COLUMNS)


def changed_visit_ids(current: DataFrame, previous: DataFrame) -> DataFrame:
    """Visits to recompute: new, gone, or with a different fingerprint.

    Args:
        current: today's fingerprints (``visit_id`` + fingerprint columns).
        previous: the stored fingerprints.

    Returns:
        One ``visit_id`` column; a visit that is gone is included so its rows are
        deleted.
    """
    cur = current.select("visit_id", *(F.col(c).alias(f"cur_{c}") for c in FINGERPRINT_COLUMNS))
    prev = previous.select("visit_id", *(F.col(c).alias(f"prev_{c}") for c in FINGERPRINT_COLUMNS))
    differs = F.lit(False)
    for column in FINGERPRINT_COLUMNS:
        differs = differs | ~F.col(f"cur_{column}").eqNullSafe(F.col(f"prev_{column}"))
    return cur.join(prev, on="visit_id", how="full_outer").where(differs).select("visit_id")
