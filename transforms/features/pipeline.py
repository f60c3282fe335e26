"""Build or incrementally update one feature table: the code that runs anywhere.

``compute_feature_update`` is what a Dagster asset calls on the local SparkSession and
what the Databricks job (``transforms.pipes.feature_job``) calls on a cluster. It
returns DataFrames only; the caller commits them, so each Delta table keeps a single
writer engine.

Incremental contract: rows for the recomputed visits equal the rows a full rebuild
produces for those visits, and every other visit's rows are untouched, so
"replace the rows of ``changed_visits`` with ``rows``" gives exactly a full rebuild.
That holds because every feature of a visit depends only on that visit's inputs
(or, for ``scope="person"``, on the inputs of that patient's visits, which are then
recomputed together). A ``scope="population"`` table is generalised over every patient
(k-anonymity), so any changed visit rebuilds it whole, and none rebuilds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.features.demographics import DEMOGRAPHICS
from transforms.features.diagnoses import DIAGNOSES
from transforms.features.dictionary import FeatureOptions, FeatureTableSpec
from transforms.features.incremental import STATE_COLUMNS, changed_visit_ids
from transforms.features.labs import LAB_SUMMARIES
from transforms.features.news2 import NEWS2
from transforms.features.outcomes import OUTCOMES
from transforms.features.vitals import VITAL_SIGNS
from transforms.opt_out import exclude_opted_out

FEATURE_TABLES: dict[str, FeatureTableSpec] = {
    spec.name: spec
    for spec in (DEMOGRAPHICS, VITAL_SIGNS, NEWS2, LAB_SUMMARIES, OUTCOMES, DIAGNOSES)
}
"""Every feature table, by its name under ``gold/features``."""


@dataclass(frozen=True)
class FeatureUpdate:
    """What to commit for one feature table.

    Attributes:
        rows: feature rows of the recomputed visits (all visits when ``full_rebuild``),
            typed and ordered as the data dictionary says.
        changed_visits: ``visit_id`` of every visit whose stored rows are replaced by
            ``rows`` (visits that are gone included); unused for a full rebuild.
        state: the fingerprint of every current visit, to store once rows committed.
        full_rebuild: replace the whole table rather than the changed visits' rows.
    """

    rows: DataFrame
    changed_visits: DataFrame
    state: DataFrame
    full_rebuild: bool


def finalise(spec: FeatureTableSpec, rows: DataFrame, options: FeatureOptions) -> DataFrame:
    """Select the dictionary's columns in order, cast to its types, stamp the version.

    A table whose inputs are known at once builds no ``known_at``: it is the horizon.
    """
    out = rows.withColumn("feature_version", F.lit(options.version))
    if "known_at" not in out.columns:
        out = out.withColumn("known_at", F.col("horizon_datetime"))
    return out.select(*(F.col(c.name).cast(c.type).alias(c.name) for c in spec.columns))


def restrict_to_visits(inputs: Mapping[str, DataFrame], visits: DataFrame) -> dict[str, DataFrame]:
    """Keep only the input rows of the given visits (tables without ``visit_id`` as they are)."""
    ids = visits.select("visit_id").distinct()
    return {
        name: df.join(ids, on="visit_id", how="left_semi") if "visit_id" in df.columns else df
        for name, df in inputs.items()
    }


def stored_signature(previous_state: DataFrame) -> set[str]:
    return {row[0] for row in previous_state.select("signature").distinct().collect()}


def compute_feature_update(
    spec: FeatureTableSpec,
    inputs: Mapping[str, DataFrame],
    previous_state: DataFrame | None,
    options: FeatureOptions,
    *,
    full_rebuild: bool = False,
    opted_out: DataFrame | None = None,
) -> FeatureUpdate:
    """Feature rows for the visits whose inputs changed since ``previous_state``.

    The opted-out patients' rows are dropped from the inputs first, so their visits
    leave the state like deleted ones: the next update removes their rows, and a
    patient who opts back in is recomputed like a new one.

    Args:
        spec: the feature table.
        inputs: silver tables by name (``visits``, ``patients``, ``observations`` ...);
            at least ``spec.inputs``.
        previous_state: the fingerprints stored after the last commit, or None.
        options: version, SpO2 scale and horizon choice.
        full_rebuild: recompute every visit even when state exists.
        opted_out: the National Data Opt-out pseudonyms (``person_key``), or None.

    Returns:
        The rows to write, the visits they replace and the new state. A full rebuild
        happens on request, without state, or when the options' signature changed.

    Raises:
        KeyError: when an input the table needs is missing.
    """
    missing = [name for name in spec.inputs if name not in inputs]
    if missing:
        raise KeyError(f"{spec.name} needs silver tables {missing}")
    needed = exclude_opted_out({name: inputs[name] for name in spec.inputs}, opted_out)
    state = spec.fingerprint(needed).select(
        "visit_id",
        "source_rows",
        "source_max_change_seq",
        "source_sum_change_seq",
        F.lit(options.signature).alias("signature"),
    )
    full = (
        full_rebuild
        or previous_state is None
        or stored_signature(previous_state) != {options.signature}
    )
    changed = None
    if not full:
        assert previous_state is not None
        changed = changed_visit_ids(state, previous_state)
        full = spec.scope == "population" and not changed.isEmpty()
    if full or changed is None:
        rows = finalise(spec, spec.build(needed, options), options)
        return FeatureUpdate(
            rows=rows,
            changed_visits=state.select("visit_id"),
            state=state.select(*STATE_COLUMNS),
            full_rebuild=True,
        )
    rows = finalise(spec, spec.build(restrict_to_visits(needed, changed), options), options)
    return FeatureUpdate(
        rows=rows,
        changed_visits=changed,
        state=state.select(*STATE_COLUMNS),
        full_rebuild=False,
    )


def input_watermarks(inputs: Mapping[str, DataFrame], names: tuple[str, ...]) -> dict[str, int]:
    """The highest source ``change_seq`` in each input: the changelog numbers used."""
    frames = [
        inputs[name].select(F.lit(name).alias("input"), F.col("change_seq").cast("long"))
        for name in names
        if "change_seq" in inputs[name].columns
    ]
    if not frames:
        return {}
    stacked = frames[0]
    for frame in frames[1:]:
        stacked = stacked.unionByName(frame)
    rows = stacked.groupBy("input").agg(F.max("change_seq").alias("max_seq")).collect()
    return {row["input"]: int(row["max_seq"]) for row in rows if row["max_seq"] is not None}
