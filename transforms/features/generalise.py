"""Generalise a published table's quasi-identifiers until every patient is k-anonymous.

Local recoding, patient by patient, over a ladder of levels (pure PySpark, so it runs
the same on a local session, a cluster, Spark Connect and Databricks). Every patient
starts at level 0 (values as recorded). A patient with any row in an equivalence class
(combination of quasi-identifier values) of fewer than ``k`` patients moves up one
level, and all their rows are re-coded with every step up to it; classes are measured
again, since patients leaving a class can shrink it below ``k``, until no class is
small. The top level withholds every quasi-identifier: such a row matches anyone, so it
is not a class of its own (:func:`transforms.k_anonymity.measure_k_anonymity` skips it
too). Patients are moved, not rows: a patient's visits are linked by ``person_key``, so
one visit left specific would undo the others' generalisation.

Hand-rolled: sdcMicro (R) and the Python ports (``pycanon`` measures only, ``anjana``
applies global hierarchies to an in-memory pandas frame) neither run on Spark nor
recode locally per patient; the loop here is a grouped count and a join per round.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

LEVEL_COLUMN = "generalisation_level"
# Rounds of one step at a time before patients still in small classes are withheld.
MAX_ROUNDS = 12


@dataclass(frozen=True)
class GeneralisationStep:
    """One rung of the ladder: how it re-codes some quasi-identifiers.

    Attributes:
        description: what a researcher sees at this level, for the data dictionary.
        recode: column name to a function of that column's value at the previous level.
    """

    description: str
    recode: Mapping[str, Callable[[Column], Column]]


def withhold(_: Column) -> Column:
    """The value is not published at this level."""
    return F.lit(None)


def recoded(rows: DataFrame, ladder: Sequence[GeneralisationStep], level: Column) -> DataFrame:
    """``rows`` with every step up to each row's ``level`` applied, in ladder order."""
    expressions = {name: F.col(name) for name in rows.columns}
    for number, step in enumerate(ladder, start=1):
        for name, recode in step.recode.items():
            value = expressions[name]
            expressions[name] = F.when(level >= number, recode(value)).otherwise(value)
    # One projection, not a withColumn per step: the plan stays small for the analyser.
    return rows.select(*(expr.alias(name) for name, expr in expressions.items()))


def generalise_to_k(
    rows: DataFrame,
    *,
    k: int,
    quasi_identifiers: Sequence[str],
    ladder: Sequence[GeneralisationStep],
    person_column: str = "person_key",
) -> DataFrame:
    """``rows`` re-coded so that every class of ``quasi_identifiers`` holds ``k`` patients.

    The last step of ``ladder`` must withhold every quasi-identifier. Returns the rows
    with their values as published and ``generalisation_level`` (0 = as recorded).
    """
    top = len(ladder)
    _check_ladder(quasi_identifiers, ladder)
    if k <= 1:
        return rows.withColumn(LEVEL_COLUMN, F.lit(0))
    qis = list(quasi_identifiers)
    levels = _first_levels(rows, qis, ladder, k, person_column)
    # Levels only rise and are bounded, so the loop ends; after MAX_ROUNDS a patient
    # still in a small class is withheld at once rather than one step at a time.
    for round_number in itertools.count():
        small = _people_in_small_classes(rows, levels, qis, ladder, k, person_column)
        if small.isEmpty():
            break
        jump = top if round_number >= MAX_ROUNDS else None
        levels = _moved_up(levels, small, person_column, top, to=jump)
    with_levels = rows.join(levels, on=person_column, how="inner")
    return recoded(with_levels, ladder, F.col(LEVEL_COLUMN))


def _first_levels(
    rows: DataFrame,
    qis: list[str],
    ladder: Sequence[GeneralisationStep],
    k: int,
    person_column: str,
) -> DataFrame:
    """Each patient's lowest level at which, were everyone re-coded to it, all their
    classes would hold ``k`` patients: one grouped pass instead of a round per level.

    Re-coding only merges classes, so that level exists (the top one at worst) and is a
    good start; patients left at lower levels can still leave a class small, which the
    rounds in :func:`generalise_to_k` then settle.
    """
    top = len(ladder)
    stacked = None
    for level in range(top):
        at_level = recoded(rows, ladder, F.lit(level)).select(
            person_column, F.lit(level).alias(LEVEL_COLUMN), *qis
        )
        stacked = at_level if stacked is None else stacked.unionByName(at_level)
    assert stacked is not None
    sized = _class_sizes(stacked, [LEVEL_COLUMN, *qis])
    reached = (
        sized.groupBy(person_column, LEVEL_COLUMN)
        .agg(F.min("_size").alias("_smallest"))
        .where(F.col("_smallest") >= k)
        .groupBy(person_column)
        .agg(F.min(LEVEL_COLUMN).alias("_reached"))
    )
    people = rows.select(person_column).distinct()
    return (
        people.join(reached, on=person_column, how="left")
        .select(person_column, F.coalesce("_reached", F.lit(top)).alias(LEVEL_COLUMN))
        .localCheckpoint(eager=True)
    )


def _people_in_small_classes(
    rows: DataFrame,
    levels: DataFrame,
    qis: list[str],
    ladder: Sequence[GeneralisationStep],
    k: int,
    person_column: str,
) -> DataFrame:
    current = recoded(rows.join(levels, on=person_column), ladder, F.col(LEVEL_COLUMN))
    pairs = current.where(F.col(LEVEL_COLUMN) < len(ladder)).select(person_column, *qis)
    sized = _class_sizes(pairs, qis)
    return sized.where(F.col("_size") < k).select(person_column).distinct()


def _class_sizes(pairs: DataFrame, classes: list[str]) -> DataFrame:
    """``pairs`` (a patient and their values) with ``_size``, the patients of each class:
    one row per patient and class first, so visits are not counted; a partition treats
    NULL as a value of its own, like the measure does."""
    return pairs.distinct().withColumn(
        "_size", F.count(F.lit(1)).over(Window.partitionBy(*classes))
    )


def _moved_up(
    levels: DataFrame, small: DataFrame, person_column: str, top: int, *, to: int | None = None
) -> DataFrame:
    flagged = small.withColumn("_small", F.lit(True))
    raised = F.lit(top) if to is not None else F.least(F.col(LEVEL_COLUMN) + 1, F.lit(top))
    moved = levels.join(flagged, on=person_column, how="left").select(
        person_column,
        F.when(F.col("_small"), raised).otherwise(F.col(LEVEL_COLUMN)).alias(LEVEL_COLUMN),
    )
    # Each round's plan would otherwise hold every earlier round twice over.
    return moved.localCheckpoint(eager=True)


def _check_ladder(quasi_identifiers: Sequence[str], ladder: Sequence[GeneralisationStep]) -> None:
    if not ladder:
        raise ValueError("a generalisation ladder needs at least one step")
    last = ladder[-1].recode
    kept = [name for name in quasi_identifiers if last.get(name) is not withhold]
    if kept:
        raise ValueError(f"the ladder's last step must withhold every quasi-identifier: {kept}")
