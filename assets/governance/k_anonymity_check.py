"""The blocking k-anonymity check of a published table that exposes quasi-identifiers.

It reads the table back after every write and measures, in patients, the smallest
combination of the quasi-identifiers it exposes. The table's build generalises those
values until every combination holds k patients (``transforms.features.generalise``),
so a failure means a table was published without that, or a planted or buggy value
slipped through: the check blocks everything downstream. The metadata says how far the
table is from k and how many patients were generalised or withheld to reach it.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from resources.delta.store import DeltaTableStore, TablePath
from transforms.features.generalise import LEVEL_COLUMN
from transforms.k_anonymity import measure_k_anonymity

K_ANONYMITY_CHECK = "k_anonymity"


def k_anonymity_check_spec(key: dg.AssetKey, k: int) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        K_ANONYMITY_CHECK,
        asset=key,
        blocking=True,
        description=f"Every combination of the quasi-identifiers holds at least {k} patients "
        "(blocks below: the metadata gives the smallest class, the share of patients in "
        "smaller ones and how many were generalised to reach k).",
    )


def k_anonymity_check(
    delta: DeltaTableStore, path: TablePath, quasi_identifiers: Sequence[str], k: int
) -> dg.AssetCheckResult:
    """Measure the stored table; fail (blocking) when any class is smaller than ``k``."""
    names = delta.table(path).schema().to_arrow().names
    levelled = LEVEL_COLUMN in names
    data = delta.read(
        path, columns=["person_key", *quasi_identifiers, *([LEVEL_COLUMN] if levelled else [])]
    )
    report = measure_k_anonymity(data, quasi_identifiers, k=k)
    metadata: dict[str, dg.RawMetadataValue] = {
        "k": k,
        "quasi_identifiers": ", ".join(report.quasi_identifiers),
        "patients": report.people,
        "equivalence_classes": report.classes,
        "smallest_class": report.smallest_class,
        "share_of_patients_below_k": round(report.share_below_k, 4),
        "patients_withheld": report.people_withheld,
    }
    if levelled:
        metadata["patients_generalised"] = _people_generalised(data)
    return dg.AssetCheckResult(
        check_name=K_ANONYMITY_CHECK,
        passed=report.anonymous,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def _people_generalised(data: pa.Table) -> int:
    generalised = data.filter(pc.greater(data[LEVEL_COLUMN], 0))
    return len(pc.unique(generalised["person_key"]))
