"""A check that every id the reports need can be used: one bad id skips only its own report.

Runs with ``reporting/request_item_status`` (where the ids arrive). Client ids and
batch (request) ids Dagster cannot take as partition keys are skipped by the planner
(``assets.reports.report_ids``); ids that cannot be path segments as they are get a
safe name. The check fails (warn) while any is skipped, and counts the safe-named ones;
it names ids by hash and length only, since an id could be an identifier.
"""

from collections import Counter

import dagster as dg
import pyarrow.compute as pc

from assets.reporting.settings import ReportingDomain
from assets.reporting.staging import REQUEST_ITEM_STATUS
from assets.reports.partitions import known_clients
from assets.reports.report_ids import describe_id, partition_key_problem, path_segment
from resources.delta.store import DeltaTableStore

REPORT_IDS_CHECK = "report_ids_usable"
LISTED = 20


def build_id_check(settings: ReportingDomain) -> dg.AssetChecksDefinition:
    """The ``report_ids_usable`` check of ``reporting/request_item_status``."""

    @dg.asset_check(
        asset=REQUEST_ITEM_STATUS,
        name=REPORT_IDS_CHECK,
        description="Every client id and batch id can key a report partition; skipped ids "
        "are counted (by hash, never by value), and safe-named path segments too.",
    )
    def report_ids_usable(delta: DeltaTableStore) -> dg.AssetCheckResult:
        skipped: list[str] = []
        reasons: Counter[str] = Counter()
        for client in known_clients(settings, delta):
            problem = partition_key_problem(client, dimension=True)
            if problem:
                skipped.append(f"client {describe_id(client)} {problem}")
                reasons[f"client id {problem}"] += 1
        table = delta.read_or_none(REQUEST_ITEM_STATUS.path, columns=["requestid", "requestrefid"])
        safe_named = 0
        if table is not None:
            pairs = table.group_by(["requestid", "requestrefid"]).aggregate([])
            for request in pc.unique(pairs["requestid"]).to_pylist():
                problem = partition_key_problem(request)
                if problem:
                    skipped.append(f"batch {describe_id(request)} {problem}")
                    reasons[f"batch id {problem}"] += 1
            for column in ("requestid", "requestrefid"):
                for value in pc.unique(pairs[column]).to_pylist():
                    plain = value not in (None, "") and not path_segment(value).startswith("~")
                    safe_named += not plain
        return dg.AssetCheckResult(
            passed=not skipped,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "ids_skipped": len(skipped),
                "skipped_reasons": dg.MetadataValue.json(dict(reasons)),
                "skipped": dg.MetadataValue.json(skipped[:LISTED]),
                "path_segments_safe_named": safe_named,
            },
        )

    return report_ids_usable
