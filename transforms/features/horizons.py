"""Horizons: the moments at which a visit's features are computed.

Design: by default a feature table has a horizon at every moment its information
changes: each charted observation set for vitals and NEWS2, each lab collection for
lab summaries, admission for demographics and labels. This gives the finest
resolution with the fewest rows, and the researcher API's as-of join turns any event
time into "the latest horizon at or before it". ``horizon_grid_hours`` switches to a
regular grid instead: every N hours from the first whole hour at or after admission
to discharge (or, for a visit still open, its last charted event), which suits
models trained on evenly spaced samples.

Window features are computed by stacking horizon rows and event rows in one frame
and aggregating with range-based window frames on epoch seconds, so a horizon sees
exactly the events at or before it (and a horizon that is itself an event sees that
event). Everything is UTC.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from transforms.features.dictionary import FeatureOptions

EPOCH = "_t"
IS_HORIZON = "_is_horizon"


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


def stack_with_events(horizons: DataFrame, events: DataFrame, time_column: str) -> DataFrame:
    """Horizon rows and event rows in one frame, with epoch seconds in ``_t``.

    Horizon rows carry ``_is_horizon = true`` and null event columns; event rows carry
    their values and a null ``horizon_datetime``. Aggregate over :func:`visit_window`
    and keep the horizon rows.
    """
    marked_horizons = horizons.select(
        "visit_id",
        "person_key",
        "horizon_datetime",
        epoch_seconds(F.col("horizon_datetime")).alias(EPOCH),
        F.lit(True).alias(IS_HORIZON),
    )
    marked_events = events.where(F.col(time_column).isNotNull()).select(
        "*",
        epoch_seconds(F.col(time_column)).alias(EPOCH),
        F.lit(False).alias(IS_HORIZON),
    )
    marked_events = marked_events.drop("person_key", "horizon_datetime")
    return marked_horizons.unionByName(marked_events, allowMissingColumns=True)


def visit_window(seconds: int | None) -> WindowSpec:
    """Events of the same visit in ``(t - seconds, t]``; ``None`` = everything up to ``t``.

    A range frame on epoch seconds includes every row with the same ``_t`` (peers),
    so an event at exactly the horizon counts, and the window's start is exclusive:
    an event exactly ``seconds`` before the horizon has left the window.
    """
    ordered = Window.partitionBy("visit_id").orderBy(EPOCH)
    if seconds is None:
        return ordered.rangeBetween(Window.unboundedPreceding, Window.currentRow)
    return ordered.rangeBetween(-(seconds - 1), Window.currentRow)


def latest(value: Column, *tie_breakers: Column, present: Column | None = None) -> Column:
    """The value with the greatest ``_t`` (then tie-breakers) among rows where it is set.

    Used over a window: ``max_by`` ignores rows whose ordering is null, which skips
    missing readings and horizon rows, and the tie-breakers make the choice between
    two events at the same second deterministic.

    Args:
        value: the column to pick.
        tie_breakers: further ordering after ``_t`` (e.g. the event's id).
        present: which rows qualify; default ``value IS NOT NULL``.
    """
    qualifies = value.isNotNull() if present is None else present
    ordering = F.when(qualifies, F.struct(F.col(EPOCH), *tie_breakers))
    return F.max_by(value, ordering)
