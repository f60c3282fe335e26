"""PDS trace/verify of the clinical source's NHS numbers, before they are pseudonymised.

``bronze/ehr/pds_verification`` holds, per NHS number, only what PDS said about it: the
outcome (verified, not found, superseded with the number now in use, invalid), the
deceased flag and the restricted (sensitive record) flag, and when it was checked.
No name, address, date of birth or GP is stored or logged. Silver patients read it
(``transforms.pds_silver``): a superseded number is pseudonymised as its successor, and
a restricted patient's postcode district is suppressed.

Numbers without an outcome, or checked more than ``pds.reverify_after_days`` ago, are
read; a number that does not pass the modulus-11 check is recorded as invalid without
a call. Answers are committed even when some reads failed; those fail the run in one
line and are read again next time.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.ehr.bronze_view import read_current
from assets.fhir.settings import PdsSettings
from assets.keys import CLINICAL_SOURCE, PDS_VERIFICATION, bronze_key
from resources.delta.store import DeltaTableStore
from resources.pds import PdsError, PdsResource
from transforms.fhir.pds_outcome import PdsOutcome
from transforms.identifiers import valid_nhs_number_digits

SCHEMA = pa.schema(
    [
        ("nhs_number", pa.string()),
        ("outcome", pa.string()),
        ("superseded_by", pa.string()),
        ("deceased", pa.bool_()),
        ("restricted", pa.bool_()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
    ]
)


def source_numbers(delta: DeltaTableStore) -> tuple[set[str], set[str]]:
    """The live patients' NHS numbers: (valid ten-digit forms, invalid values as given)."""
    path = bronze_key("patients").path
    if not delta.exists(path):
        return set(), set()
    rows = read_current(delta, path, ["patient_id"], columns=["nhs_number", "is_deleted"])
    live = rows.filter(pc.invert(pc.fill_null(rows["is_deleted"].cast(pa.bool_()), False)))
    valid: set[str] = set()
    invalid: set[str] = set()
    for value in live["nhs_number"].to_pylist():
        if value is None:
            continue
        digits = valid_nhs_number_digits(str(value))
        if digits:
            valid.add(digits)
        else:
            invalid.add(str(value).strip())
    return valid, invalid


def due_numbers(stored: pa.Table | None, numbers: set[str], *, older_than: datetime) -> list[str]:
    """The numbers never checked, or checked before ``older_than``, in a stable order."""
    if stored is None:
        return sorted(numbers)
    fresh = {
        n
        for n, at in zip(
            stored["nhs_number"].to_pylist(), stored["checked_at"].to_pylist(), strict=True
        )
        if at is not None and at >= older_than
    }
    return sorted(numbers - fresh)


def outcome_rows(outcomes: list[PdsOutcome], now: datetime) -> pa.Table:
    return pa.Table.from_pylist([{**vars(o), "checked_at": now} for o in outcomes], schema=SCHEMA)


def merged(stored: pa.Table | None, new: pa.Table, keep: set[str]) -> pa.Table:
    """Stored outcomes of numbers still in the source, replaced by the new ones."""
    if stored is None:
        return new
    replaced = set(new["nhs_number"].to_pylist())
    stay = [n in keep and n not in replaced for n in stored["nhs_number"].to_pylist()]
    return pa.concat_tables([stored.filter(pa.array(stay, pa.bool_())).cast(SCHEMA), new])


def build_pds_defs(*, settings: PdsSettings) -> dg.AssetsDefinition:
    """The PDS verification asset (only built when ``pds.enabled``)."""
    max_age = timedelta(days=settings.reverify_after_days)

    @dg.asset(
        key=PDS_VERIFICATION,
        deps=[bronze_key("patients")],
        description=(
            f"PDS ({settings.environment}) outcome per NHS number: verified, not found, "
            "superseded (with the current number) or invalid, and the deceased and "
            "restricted flags; never demographics. Restricted: holds NHS numbers."
        ),
        group_name="ehr",
        kinds={"fhir", "delta"},
        owners=["team:data-engineering"],
        tags={"zone": "bronze", "source": CLINICAL_SOURCE, "pii": "true"},
        op_tags={"dagster/concurrency_key": "pds"},
    )
    def pds_verification(
        context: dg.AssetExecutionContext, delta: DeltaTableStore, pds: PdsResource
    ) -> dg.MaterializeResult:
        now = datetime.now(UTC)
        valid, invalid = source_numbers(delta)
        stored = delta.read_or_none(PDS_VERIFICATION.path)
        due = due_numbers(stored, valid, older_than=now - max_age)
        try:
            result = pds.verify(due, log=context.log.info)
        except PdsError as exc:
            raise dg.Failure(description=f"{exc}; nothing was verified") from None
        outcomes = result.outcomes + [PdsOutcome(v, "invalid") for v in sorted(invalid)]
        table = merged(stored, outcome_rows(outcomes, now), valid | invalid)
        metrics = delta.sync(PDS_VERIFICATION.path, table, keys=["nhs_number"])
        counts: dict[str, int] = {}
        for outcome in table["outcome"].to_pylist():
            counts[outcome] = counts.get(outcome, 0) + 1
        if result.failures:
            reason = next(iter(result.failures.values()))
            raise dg.Failure(
                description=f"PDS: {len(result.failures)} of {len(due)} reads failed ({reason}); "
                f"the {len(result.outcomes)} answered are stored, a rerun reads the rest"
            )
        return dg.MaterializeResult(
            metadata={
                "checked": len(due),
                "outcomes": dg.MetadataValue.json(dict(sorted(counts.items()))),
                "deceased": sum(bool(d) for d in table["deceased"].to_pylist()),
                "restricted": sum(bool(r) for r in table["restricted"].to_pylist()),
                "rows_updated": metrics.updated + metrics.inserted,
            }
        )

    return pds_verification
