"""The feature store's data dictionary, kept as data beside the code that fills it.

Every feature table is described by a :class:`FeatureTableSpec`: its columns (name,
Spark SQL type, description, role, and the silver columns it is derived from), the
silver tables it reads, how to build it and how to fingerprint its inputs for
incremental updates. The researcher API and the CLI print these descriptions; the
Dagster assets turn the ``sources`` into column lineage; the pipeline casts every
output to the declared types, so the dictionary cannot drift from the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pyspark.sql import DataFrame

Role = Literal["key", "feature", "label", "metadata"]

KEY_COLUMNS: tuple[str, ...] = ("visit_id", "horizon_datetime", "known_at")
"""A row is a visit at a horizon as known at a time (bitemporal: event and known-at)."""

KNOWN_AT_AT_HORIZON = (
    "When the row's values were known: the horizon itself (its inputs are known at once)."
)


@dataclass(frozen=True)
class FeatureColumn:
    """One column of a feature table, as researchers see it in the data dictionary."""

    name: str
    type: str
    description: str
    role: Role = "feature"
    sources: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FeatureOptions:
    """Choices that change feature values; a change forces a full rebuild.

    Attributes:
        version: the feature version written into every row (``feature_version``).
        spo2_scale: NEWS2 SpO2 scale, 1 (default) or 2 (hypercapnic respiratory
            failure, target 88-92%, on clinical decision).
        horizon_grid_hours: ``None`` = a horizon at every charted event (observation
            set or lab collection); N = a regular N-hour grid through the stay.
        k_anonymity: every combination of a table's quasi-identifiers holds at least
            this many patients once published (1 = publish as recorded).
    """

    version: str = "v1"
    spo2_scale: int = 1
    horizon_grid_hours: int | None = None
    k_anonymity: int = 1

    def __post_init__(self) -> None:
        if self.spo2_scale not in (1, 2):
            raise ValueError(f"spo2_scale must be 1 or 2, not {self.spo2_scale}")
        if self.horizon_grid_hours is not None and self.horizon_grid_hours <= 0:
            raise ValueError("horizon_grid_hours must be positive")
        if self.k_anonymity < 1:
            raise ValueError("k_anonymity must be at least 1")

    @property
    def signature(self) -> str:
        """What a stored table was built with; a different signature means rebuild all."""
        grid = "event" if self.horizon_grid_hours is None else f"{self.horizon_grid_hours}h"
        return (
            f"version={self.version};spo2_scale={self.spo2_scale};horizons={grid}"
            f";k={self.k_anonymity}"
        )


Inputs = Mapping[str, DataFrame]


@dataclass(frozen=True)
class FeatureTableSpec:
    """How one feature table is built, described and kept up to date.

    Attributes:
        name: the table name under ``gold/features``.
        description: one sentence for the catalogue.
        inputs: the silver EHR tables it reads (``visits``, ``observations``, ...).
        columns: the data dictionary, key columns first, in output order.
        build: inputs and options to feature rows (any column order; extra columns
            are dropped).
        fingerprint: inputs to one row per visit: ``visit_id``, ``change_seq`` pairs
            whose count, max and sum identify the visit's input rows.
        scope: ``person`` when a visit's features depend on the patient's other
            visits (readmission), so a change recomputes every visit of that person;
            ``population`` when its published values depend on every patient
            (generalised to k-anonymity), so any change recomputes the whole table.
        horizon: how ``horizon_datetime`` is chosen, for the dictionary.
        keys: the columns that make a row unique (checked after every write).
        kind: ``horizons`` (a row per horizon and revision, joined as of an event
            time) or ``events`` (a row per fact, read through code lists).
        quasi_identifiers: columns that, combined, could single a patient out (age,
            sex, area, ethnicity): generalised by ``build`` and measured for
            k-anonymity after every write.
    """

    name: str
    description: str
    inputs: tuple[str, ...]
    columns: tuple[FeatureColumn, ...]
    build: Callable[[Inputs, FeatureOptions], DataFrame]
    fingerprint: Callable[[Inputs], DataFrame]
    scope: Literal["visit", "person", "population"] = "visit"
    horizon: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    keys: tuple[str, ...] = KEY_COLUMNS
    kind: Literal["horizons", "events"] = "horizons"
    quasi_identifiers: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> FeatureColumn:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column '{name}'")


def key_columns(
    horizon_description: str, known_at_description: str = KNOWN_AT_AT_HORIZON
) -> tuple[FeatureColumn, ...]:
    """The columns every feature table starts with."""
    return (
        FeatureColumn(
            "visit_id",
            "bigint",
            "Hospital visit (admission to discharge) the row describes.",
            "key",
            (("visits", "visit_id"),),
        ),
        FeatureColumn(
            "person_key",
            "string",
            "Pseudonymised patient: keyed HMAC-SHA256 of the NHS number; links visits.",
            "key",
            (("visits", "person_key"),),
        ),
        FeatureColumn("horizon_datetime", "timestamp", horizon_description, "key"),
        FeatureColumn("known_at", "timestamp", known_at_description, "key"),
    )


VERSION_COLUMN = FeatureColumn(
    "feature_version",
    "string",
    "Feature definition version (config features.version) the row was computed with.",
    "metadata",
)
