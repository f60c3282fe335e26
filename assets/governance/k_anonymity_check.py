"""The k-anonymity check of a published table that exposes quasi-identifiers.

It reads the table back after every write and measures, in patients, the smallest
combination of the quasi-identifiers it exposes. It warns (it does not block) below the
configured k: generalising the published values (age bands, postcode areas) so that
every class reaches k is not built yet, and blocking without it would stop every run
on a hospital-sized population. The metadata says how far the table is from k.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from resources.delta.store import DeltaTableStore, TablePath
from transforms.k_anonymity import measure_k_anonymity

K_ANONYMITY_CHECK = "k_anonymity"


def k_anonymity_check_spec(key: dg.AssetKey, k: int) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        K_ANONYMITY_CHECK,
        asset=key,
        blocking=False,
        description=f"Every combination of the quasi-identifiers holds at least {k} patients "
        "(warns below: the metadata gives the smallest class and the share of patients in "
        "smaller ones).",
    )


def k_anonymity_check(
    delta: DeltaTableStore, path: TablePath, quasi_identifiers: Sequence[str], k: int
) -> dg.AssetCheckResult:
    """Measure the stored table; WARN when any class is smaller than ``k``."""
    data = delta.read(path, columns=["person_key", *quasi_identifiers])
    report = measure_k_anonymity(data, quasi_identifiers, k=k)
    return dg.AssetCheckResult(
        check_name=K_ANONYMITY_CHECK,
        passed=report.anonymous,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "k": k,
            "quasi_identifiers": ", ".join(report.quasi_identifiers),
            "equivalence_classes": report.classes,
            "smallest_class": report.smallest_class,
            "share_of_patients_below_k": round(report.share_below_k, 4),
        },
    )
