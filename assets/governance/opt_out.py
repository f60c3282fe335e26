"""The National Data Opt-out list, refreshed into ``internal/national_data_opt_out``.

Patients who opted out of their data being used for research and planning must never
appear in a research-published table. This asset reads the configured list (a file of
NHS numbers, or a table of a configured source database), keeps only their pseudonyms
(the same keyed hash as silver's ``person_key``), and commits only when the list
changed. The feature tables depend on it and drop those patients' rows before anything
is computed, so a patient who opts out disappears from every feature table (and the
cohorts built from them) on the next run; their visits drop out of the incremental
state like deleted ones, so only they are recomputed. Operational reporting for direct
care (the reporting domain) is not subject to the opt-out and does not read it.

Entries that are not valid NHS numbers go to ``bronze/governance/quarantine_opt_out``
with their line number and reason, never their value. With no source configured the
table is written empty, so the feature tables always have a list to apply.
"""

from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import sqlalchemy as sa

from assets.governance.settings import GovernanceDomain, OptOutSettings
from assets.metadata import delta_table_metadata
from resources.delta.store import DeltaTableStore
from resources.pseudonymiser import Pseudonymiser
from resources.sql_source import SqlSourceResource
from transforms.opt_out import file_entries, pseudonymise_opt_outs

OPT_OUT_KEY = dg.AssetKey(["internal", "national_data_opt_out"])
OPT_OUT_QUARANTINE = ("bronze", "governance", "quarantine_opt_out")


class OptOutDomain(GovernanceDomain, Protocol):
    """What the opt-out asset reads: governance and where relative files live."""

    @property
    def data_dir(self) -> Path: ...


class OptOutSourceError(RuntimeError):
    """The configured opt-out list cannot be read."""


def read_entries(
    settings: OptOutSettings, data_dir: Path, source: SqlSourceResource | None
) -> list[tuple[int, object]]:
    """``(line or row number, value)`` of every entry of the configured list.

    Raises:
        OptOutSourceError: the file or table cannot be read (one line, naming it).
    """
    if settings.file:
        path = Path(settings.file)
        path = path if path.is_absolute() else data_dir / path
        try:
            return file_entries(path.read_text(encoding="utf-8-sig"), settings.column)
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise OptOutSourceError(f"cannot read the opt-out file {path}: {reason}") from None
    if source is None or not settings.table:
        return []
    query: sa.Select[Any] = sa.select(sa.column(settings.column)).select_from(
        sa.table(settings.table)
    )
    try:
        with source.connect() as connection:
            values = connection.execute(query).scalars().all()
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise OptOutSourceError(
            f"cannot read the opt-out table {settings.table}.{settings.column}: {reason}"
        ) from None
    return [(n + 1, value) for n, value in enumerate(values)]


def refresh_opt_outs(
    delta: DeltaTableStore,
    pseudonymiser: Pseudonymiser,
    entries: list[tuple[int, object]],
) -> dict[str, Any]:
    """Store the list's pseudonyms (only when they changed) and set invalid entries aside.

    Returns:
        Counts for the asset's metadata (the number of patients is added by the caller,
        under disclosure control).
    """
    listed = pseudonymise_opt_outs(entries, pseudonymiser.key_bytes())
    table = listed.table()
    path = OPT_OUT_KEY.path
    unchanged = delta.exists(path) and delta.read(path).equals(table)
    if not unchanged:
        delta.overwrite(path, table)
    quarantined = listed.quarantine()
    if quarantined.num_rows or delta.exists(OPT_OUT_QUARANTINE):
        previous = delta.read_or_none(OPT_OUT_QUARANTINE)
        if previous is None or not previous.equals(quarantined):
            delta.overwrite(OPT_OUT_QUARANTINE, quarantined)
    return {
        "patients": len(listed.person_keys),
        "entries_rejected": quarantined.num_rows,
        "rejected_reasons": dg.MetadataValue.json(listed.reasons()),
        "committed": not unchanged,
    }


def build_defs(settings: OptOutDomain) -> dg.Definitions:
    """The opt-out list asset (group governance)."""
    opt_out = settings.governance.opt_out
    policy = settings.governance.disclosure.policy()
    data_dir = Path(settings.data_dir)
    required = {"delta", "pseudonymiser", *((opt_out.source,) if opt_out.source else ())}
    origin = (
        f"file {opt_out.file}"
        if opt_out.file
        else f"{opt_out.source}.{opt_out.table}.{opt_out.column}"
        if opt_out.source
        else "none configured (an empty list)"
    )

    @dg.asset(
        key=OPT_OUT_KEY,
        description="Pseudonyms of the patients in the National Data Opt-out list "
        f"(source: {origin}); the feature tables drop their rows. Never NHS numbers.",
        group_name="governance",
        kinds={"delta"},
        owners=["team:data-engineering"],
        tags={"zone": "internal"},
        required_resource_keys=required,
    )
    def national_data_opt_out(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        delta: DeltaTableStore = context.resources.delta
        source = getattr(context.resources, opt_out.source) if opt_out.source else None
        try:
            entries = read_entries(opt_out, data_dir, source)
        except OptOutSourceError as exc:
            raise dg.Failure(description=str(exc)) from None
        counts = refresh_opt_outs(delta, context.resources.pseudonymiser, entries)
        patients = counts.pop("patients")
        if counts["entries_rejected"]:
            context.log.warning(
                f"{counts['entries_rejected']} opt-out entr(ies) are not valid NHS numbers: "
                f"set aside in {'/'.join(OPT_OUT_QUARANTINE)} (line numbers and reasons)"
            )
        return dg.MaterializeResult(
            metadata={
                **delta_table_metadata(delta, OPT_OUT_KEY.path),
                **counts,
                "opted_out_patients": policy.shown(patients),
                "disclosure_rule": policy.rule,
                "source": origin,
            }
        )

    return dg.Definitions(assets=[national_data_opt_out])


def opted_out_keys(delta: DeltaTableStore) -> bool:
    """Whether a non-empty opt-out list is stored (what the feature tables must apply)."""
    found = delta.read_or_none(OPT_OUT_KEY.path, columns=["person_key"])
    return found is not None and found.num_rows > 0
