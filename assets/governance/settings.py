"""Settings of information governance: disclosure control, the opt-out source, projects."""

from __future__ import annotations

import re
from typing import Literal, Protocol

from pydantic import Field, field_validator, model_validator

from resources.settings import StrictSettings
from transforms.disclosure import DisclosurePolicy

_PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class DisclosureSettings(StrictSettings):
    """One statistical disclosure control policy for every published count of people."""

    threshold: int = Field(
        default=7, ge=0, description="Counts of 1 to this many people are suppressed."
    )
    rounding_base: int = Field(
        default=5, ge=1, description="Other counts are rounded to the nearest multiple."
    )
    method: Literal["round", "midpoint6"] = Field(
        default="round",
        description="`round`: suppress then round; `midpoint6`: 0 stays 0, 1-6 -> 3, "
        "7-12 -> 9 ..., published as <column>_midpoint6.",
    )

    def policy(self) -> DisclosurePolicy:
        return DisclosurePolicy(
            threshold=self.threshold, rounding_base=self.rounding_base, method=self.method
        )


class OptOutSettings(StrictSettings):
    """Where the National Data Opt-out list comes from: a file or a source table."""

    file: str | None = Field(
        default=None,
        description="A text or CSV file of NHS numbers (one per line, or a column "
        "`nhs_number`); relative paths are under the data directory.",
    )
    source: str | None = Field(
        default=None, description="A data_source_connections name holding the list."
    )
    table: str | None = Field(default=None, description="The table of that source.")
    column: str = Field(default="nhs_number", description="The NHS number column.")
    refresh_cron: str = Field(
        default="0 1 * * *", description="When the opt-out list is refreshed (Europe/London)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> OptOutSettings:
        if self.file and self.source:
            raise ValueError("give either file or source (with table), not both")
        if bool(self.source) != bool(self.table):
            raise ValueError("source and table go together")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.file or self.source)


class ResearchProject(StrictSettings):
    """A research project: its readers see person keys no other project shares."""

    id: str
    description: str = ""

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _PROJECT_ID.match(value):
            raise ValueError("must be 2-63 lowercase letters, digits and hyphens")
        return value


class KAnonymitySettings(StrictSettings):
    """Re-identification risk of published tables with quasi-identifiers."""

    k: int = Field(
        default=10, ge=2, description="Each quasi-identifier combination holds >= k patients."
    )


class GovernanceSettings(StrictSettings):
    """Information-governance rules enforced where published tables are written."""

    disclosure: DisclosureSettings = DisclosureSettings()
    k_anonymity: KAnonymitySettings = KAnonymitySettings()
    opt_out: OptOutSettings = OptOutSettings()
    projects: list[ResearchProject] = Field(default_factory=list)

    def project(self, project_id: str) -> ResearchProject:
        """The configured project with this id.

        Raises:
            KeyError: naming the configured ids.
        """
        for project in self.projects:
            if project.id == project_id:
                return project
        known = ", ".join(p.id for p in self.projects) or "none"
        raise KeyError(f"no research project '{project_id}' in governance.projects ({known})")


class GovernanceDomain(Protocol):
    """What governance reads of a deployment's settings."""

    @property
    def governance(self) -> GovernanceSettings: ...
