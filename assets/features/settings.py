"""Settings of the feature store: version, NEWS2 SpO2 scale, horizon grid."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

from assets.governance.settings import GovernanceDomain
from resources.settings import StrictSettings


class FeatureSettings(StrictSettings):
    """The feature store's shape."""

    version: str = "v1"
    spo2_scale: Literal[1, 2] = Field(
        default=1, description="NEWS2 SpO2 scale: 1, or 2 for hypercapnic respiratory failure."
    )
    horizon_grid_hours: int | None = Field(
        default=None,
        gt=0,
        description="None = a horizon at every charted event; N = every N hours of the stay.",
    )


class FeatureDomain(GovernanceDomain, Protocol):
    """What the feature store reads of a deployment's settings (governance: the k of the
    k-anonymity check)."""

    @property
    def features(self) -> FeatureSettings: ...

    @property
    def compute(self) -> Literal["local", "databricks"]: ...
