"""Settings of the EHR domain: source connections and their tables, and how loads are guarded."""

from __future__ import annotations

import re
from typing import Literal, Protocol

from pydantic import Field, field_validator

from resources.settings import StrictSettings

CLINICAL_SOURCE = "ehr"
"""The data source connection whose tables feed silver and the features (see assets.keys)."""

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


class SourceTable(StrictSettings):
    """One table of a source database, loaded bulk first and then by changelog."""

    name: str
    primary_key: list[str] = Field(min_length=1)
    change_column: str = "change_seq"
    deleted_column: str | None = "is_deleted"
    batch_size: int = Field(default=50_000, gt=0)
    description: str = ""
    nhs_number_column: str | None = Field(
        default=None, description="Column holding NHS numbers; checked for validity in bronze."
    )

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be snake_case (letters, digits, underscores)")
        return value


class DataSourceConnection(StrictSettings):
    """A named source database; the name is also its Dagster resource key."""

    name: str
    description: str = ""
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL without the password; omitted = embedded SQLite.",
    )
    password_env: str | None = Field(
        default=None, description="Environment variable holding the database password."
    )
    tables: list[SourceTable] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be snake_case (letters, digits, underscores)")
        return value


DroppedColumnPolicy = Literal["fail", "load_as_null"]


class EhrSettings(StrictSettings):
    """How EHR source loads are guarded and triggered."""

    lock_stale_after_minutes: int = Field(default=120, gt=0)
    sensor_interval_seconds: int = Field(default=300, gt=0)
    lock_heartbeat_seconds: int = Field(
        default=60, gt=0, description="How often a running load refreshes its lock."
    )
    freshness_max_age_days: int = Field(
        default=3, gt=0, description="Silver event tables warn when their newest event is older."
    )
    automation_running: bool = Field(
        default=False,
        description="Start the nightly schedule and change sensors when the daemon starts.",
    )
    dropped_source_columns: DroppedColumnPolicy = Field(
        default="fail",
        description="A column bronze has that the source no longer has: `fail` stops that "
        "table's load (nothing loaded, the changelog number kept) with an error naming the "
        "column; `load_as_null` loads the table's changes with the column empty from then on.",
    )


class EhrDomain(Protocol):
    """What the EHR domain reads of a deployment's settings."""

    @property
    def ehr(self) -> EhrSettings: ...

    @property
    def data_source_connections(self) -> list[DataSourceConnection]: ...
