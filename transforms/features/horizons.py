"""Horizons: the moments at which a visit's features are computed.

Design: by default a feature table has a horizon at every moment its information
changes: each charted observation set for vitals and NEWS2, each lab collection for
lab summaries, admission for demographics and labels. This gives the finest
resolution with the fewest rows, and the researcher API's as-of join turns any event
time into "the latest horizon at or before it". ``horizon_grid_hours`` switches to a
regular grid instead: every N hours from the first whole hour at or after admission
to discharge (or, for a visit still open, its last charted event), which suits
models trained on evenly spaced samples.

Everything is UTC.

Known-at (bitemporal) tables: lab results, observation sets and diagnoses become known
after the moment they describe (a result is reported hours after its sample was
taken). Such a table has one row per horizon *as known at* ``known_at``: first as
known at the horizon itself, then once more at each later time a fact in the
horizon's window became known, with the values that knowledge gives. Those are built
by :func:`revisions` and :func:`facts_as_known`, which join each revision to the facts
of its visit whose event time is in the horizon's window and whose known-at time is
at or before the revision's; the researcher API then picks, for a training row at
``t``, the latest horizon at or before ``t`` as known at ``t``. Windows are
``(horizon - W, horizon]`` on event time: a fact exactly at the horizon counts, one
exactly ``W`` before it has left. (An earlier version aggregated with range window
frames; a join is what lets a revision see only the facts known by its own time.)
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.features.dictionary import FeatureOptions

EPOCH = "_t"
KNOWN_AT = "known_at"
KNOWN_EPOCH = "_k"
HORIZON_EPOCH = "_h"
REVISION_EPOCH = "_r"


def epoch_seconds(ts: Column) -> Column:
    """Whole seconds since 1970-01-01 UTC (sub-second parts are truncated)."""
    return F.unix_seconds(ts)


def event_horizons(visits: DataFrame, events: DataFrame, time_column: str) -> DataFrame:
    """One horizon per distinct event time of each visit.

    Args:
        visits: silver visits (``visit_id``, ``person_key``).
        events: rows with ``visit_id`` and ``time_column``; null times are ignored.
        time_column: the event time.

    Returns:
        ``visit_id``, ``person_key``, ``horizon_datetime``, unique per visit and time.
    """
    times = (
        events.where(F.col(time_column).isNotNull())
        .select("visit_id", F.col(time_column).alias("horizon_datetime"))
        .distinct()
    )
    return times.join(visits.select("visit_id", "person_key"), on="visit_id", how="inner")


def grid_horizons(
    visits: DataFrame, events: DataFrame, time_column: str, *, every_hours: int
) -> DataFrame:
    """A horizon every ``every_hours`` from the first whole hour at or after admission.

    The grid ends at discharge, or for a visit still in hospital at its last event (so
    the result depends on the data, never on the clock, and re-running is stable).

    Returns:
        ``visit_id``, ``person_key``, ``horizon_datetime``.
    """
    last_event = events.groupBy("visit_id").agg(F.max(time_column).alias("_last_event"))
    admitted = F.col("admission_datetime")
    truncated = F.date_trunc("hour", admitted)
    start = F.when(truncated == admitted, truncated).otherwise(
        truncated + F.expr("INTERVAL 1 HOUR")
    )
    end = F.coalesce(F.col("discharge_datetime"), F.col("_last_event"), admitted)
    step = F.expr(f"INTERVAL {int(every_hours)} HOURS")
    grid = F.when(end >= start, F.sequence(start, end, step)).otherwise(
        F.array().cast("array<timestamp>")
    )
    return (
        visits.where(admitted.isNotNull())
        .join(last_event, on="visit_id", how="left")
        .select("visit_id", "person_key", F.explode(grid).alias("horizon_datetime"))
    )


def build_horizons(
    visits: DataFrame, events: DataFrame, time_column: str, options: FeatureOptions
) -> DataFrame:
    """Event horizons, or a regular grid when ``options.horizon_grid_hours`` is set."""
    if options.horizon_grid_hours is None:
        return event_horizons(visits, events, time_column)
    return grid_horizons(visits, events, time_column, every_hours=options.horizon_grid_hours)


def with_known_at(events: DataFrame, event_column: str, known_column: str | None) -> DataFrame:
    """Events with their event time ``_t`` and known-at time ``_k`` in epoch seconds.

    A fact without a known-at time (or a table that has none) counts as known at its
    event time. Events without an event time are dropped, as horizons ignore them.
    """
    event = F.col(event_column)
    known = event if known_column is None else F.coalesce(F.col(known_column), event)
    return events.where(event.isNotNull()).select(
        "*",
        epoch_seconds(event).alias(EPOCH),
        epoch_seconds(known).alias(KNOWN_EPOCH),
        known.alias("_known_ts"),
    )


def _in_window(event: Column, horizon: Column, seconds: int | None) -> Column:
    """``event`` in ``(horizon - seconds, horizon]``; ``None`` = at or before the horizon."""
    inside = event <= horizon
    if seconds is not None:
        inside = inside & (event > horizon - seconds)
    return inside


def revisions(horizons: DataFrame, events: DataFrame, *, seconds: int | None) -> DataFrame:
    """Each horizon as known at itself and at each later time a fact of its window arrived.

    Args:
        horizons: ``visit_id``, ``person_key``, ``horizon_datetime``.
        events: the output of :func:`with_known_at`.
        seconds: the horizon's window (``None`` = everything at or before it).

    Returns:
        ``visit_id``, ``person_key``, ``horizon_datetime``, ``known_at``, and their epoch
        seconds in ``_h`` and ``_r``; unique per visit, horizon and known-at time.
    """
    base = horizons.select(
        "visit_id",
        "person_key",
        "horizon_datetime",
        F.col("horizon_datetime").alias(KNOWN_AT),
    )
    # Only a fact known after its own event time can arrive after a horizon it is in.
    late_facts = events.where(F.col(KNOWN_EPOCH) > F.col(EPOCH)).select(
        F.col("visit_id").alias("_ev"), F.col(EPOCH).alias("_et"), KNOWN_EPOCH, "_known_ts"
    )
    h = epoch_seconds(F.col("horizon_datetime"))
    later = horizons.join(
        late_facts,
        (F.col("visit_id") == F.col("_ev"))
        & _in_window(F.col("_et"), h, seconds)
        & (F.col(KNOWN_EPOCH) > h),
        how="inner",
    ).select("visit_id", "person_key", "horizon_datetime", F.col("_known_ts").alias(KNOWN_AT))
    return (
        base.unionByName(later)
        .distinct()
        .withColumn(HORIZON_EPOCH, epoch_seconds(F.col("horizon_datetime")))
        .withColumn(REVISION_EPOCH, epoch_seconds(F.col(KNOWN_AT)))
    )


def facts_as_known(points: DataFrame, events: DataFrame, *, seconds: int | None) -> DataFrame:
    """Each revision beside every fact of its window that was known by then.

    Args:
        points: the output of :func:`revisions`.
        events: the output of :func:`with_known_at`.
        seconds: the window, as given to :func:`revisions`.

    Returns:
        One row per (revision, fact), plus one row with null fact columns for a
        revision that has none; aggregate by :data:`REVISION_KEYS`.
    """
    facts = events.drop("person_key", "horizon_datetime", KNOWN_AT).withColumnRenamed(
        "visit_id", "_ev"
    )
    matched = points.join(
        facts,
        (F.col("visit_id") == F.col("_ev"))
        & _in_window(F.col(EPOCH), F.col(HORIZON_EPOCH), seconds)
        & (F.col(KNOWN_EPOCH) <= F.col(REVISION_EPOCH)),
        how="left",
    )
    return matched.drop("_ev")


REVISION_KEYS: tuple[str, ...] = ("visit_id", "person_key", "horizon_datetime", KNOWN_AT)


def latest_fact(value: Column, *tie_breakers: Column, present: Column | None = None) -> Column:
    """Aggregate: ``value`` of the fact with the greatest event time (then tie-breakers)."""
    qualifies = value.isNotNull() if present is None else present
    return F.max_by(value, F.when(qualifies, F.struct(F.col(EPOCH), *tie_breakers)))
