"""The reporting staging tables as data: what each projection and aggregation is.

Every pass-1 projection follows one recipe (NHS Notify's): take the source records of
a moving window, keep the latest per key (SQL in ``<table>.sql``), pseudonymise
identifiers, add Europe/London dates, then MERGE into ``reporting/<table>`` so that a
row only moves forward in time. Every pass-2 aggregation follows another: group a
projection over its window and MERGE on the dimensions, null-safely, never letting a
running total fall. A ``ProjectionSpec`` or ``AggregationSpec`` names what differs
between tables; the functions here do the rest, and the Dagster assets are built
from the same specs, so a new staging table is a new spec and a ``.sql`` file.

Why the MERGE is order-independent: ``(timestamp, _rank)`` totally orders a key's
records (``_rank`` is the terminal flag then a keyed hash of the record's content
hash), and a row is only replaced by a record that is greater in that order. Whatever the arrival
order, file split or re-delivery, the row ends at the greatest record seen. A
dimension that the winning record lacks is filled from the stored row (or, when the
stored row lacks it, from an older record), so schema evolution upstream does not
blank columns. Dimensions are assumed not to change over an entity's life.

Why ``_rank`` is keyed: the record's content hash is a plain SHA-256 of the landed
line, which holds the NHS number. Published as it is, anyone who could rebuild the
rest of a line could test candidate NHS numbers against it; the keyed hash gives the
same total order and nothing to test against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds

from transforms.cdc import ITEM_IDENTITY_FIELDS
from transforms.identifiers import valid_nhs_number_digits
from transforms.reporting import run_sql
from transforms.reporting.calendar import local_dates

# The columns that order a key's records: a row only ever moves to a greater pair.
NEWER = "s.`timestamp` > t.`timestamp` OR (s.`timestamp` = t.`timestamp` AND s.`_rank` > t.`_rank`)"


@dataclass(frozen=True)
class ProjectionSpec:
    """One pass-1 projection: latest record per key from the CDC window.

    Attributes:
        table: the table name under ``reporting/`` and the stem of its SQL file.
        key: the column identifying a row.
        dimensions: columns a newer record may omit; kept rather than nulled.
        hashed: (source column, pseudonym column) pairs: the source column is
            replaced by its keyed hash.
        local_dates: (UTC timestamp column, local date column) pairs to add.
        description: one sentence for the Dagster UI.
        partition_by: the column the table is partitioned by, if any: a local date
            of the entity's creation, so that a cycle's updates (which concern recent
            entities) rewrite a few small files instead of the whole table.
    """

    table: str
    key: str
    dimensions: tuple[str, ...]
    description: str
    hashed: tuple[tuple[str, str], ...] = ()
    local_dates: tuple[tuple[str, str], ...] = ()
    partition_by: str | None = None

    def date_dimensions(self) -> tuple[str, ...]:
        """Local dates derived from a dimension are dimensions too."""
        return tuple(d for source, d in self.local_dates if source in self.dimensions)

    def hashed_dimensions(self) -> tuple[str, ...]:
        return tuple(h for source, h in self.hashed if source in self.dimensions)

    def all_dimensions(self) -> tuple[str, ...]:
        raw = {source for source, _ in self.hashed}
        return (
            tuple(d for d in self.dimensions if d not in raw)
            + self.hashed_dimensions()
            + self.date_dimensions()
        )


@dataclass(frozen=True)
class AggregationSpec:
    """One pass-2 aggregation over a projection's window.

    Attributes:
        table: the table name under ``reporting/`` and the stem of its SQL file.
        source: the projection it reads.
        dimensions: the group-by columns, matched null-safely in the MERGE.
        measures: (column, SQL aggregate) pairs; running totals, never reduced
            (``greatest(t, s)``), unless named in ``current``.
        current: point-in-time counts, replaced (they may fall, e.g. outstanding).
        where: a filter on the source rows, beside the window.
        window_column: the local date column the window applies to.
        batch_clients_only: aggregate only the clients of ``reporting.batch_client_ids``
            (NHS Notify's batch tables); none when that list is empty.
    """

    table: str
    source: str
    dimensions: tuple[str, ...]
    measures: tuple[tuple[str, str], ...]
    description: str
    current: tuple[str, ...] = ()
    where: str | None = None
    window_column: str = "createddate"
    batch_clients_only: bool = False

    @property
    def totals(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.measures if name not in self.current)

    def sql(self) -> str:
        """The aggregation query over ``self.source``, for ``:window_start_date`` on."""
        conditions = [f"{self.window_column} >= :window_start_date"]
        if self.where:
            conditions.append(self.where)
        dimensions = ",\n    ".join(self.dimensions)
        measures = ",\n    ".join(f"{expression} AS {name}" for name, expression in self.measures)
        return (
            f"SELECT\n    {dimensions},\n    {measures}\nFROM {self.source}\n"  # nosec B608: identifiers from code or validated config; values bound
            f"WHERE {' AND '.join(conditions)}\nGROUP BY\n    {dimensions}"
        )

    def updates(self) -> dict[str, str]:
        """MERGE updates for a matched group."""
        updates = {name: f"greatest(t.`{name}`, s.`{name}`)" for name in self.totals}
        updates.update({name: f"s.`{name}`" for name in self.current})
        return updates


# Identifiers are hashed in one normal form, by the rule the EHR path uses: "943 476 5919"
# and "9434765919" are one recipient; an invalid number is no recipient (a null hash).
HASH_NORMALISERS: dict[str, Callable[[str], str | None]] = {"nhsnumber": valid_nhs_number_digits}

REQUEST_ITEM_STATUS = ProjectionSpec(
    table="request_item_status",
    key="requestitemid",
    dimensions=(
        "clientid",
        "campaignid",
        "sendinggroupid",
        "sendinggroupidversion",
        "requestid",
        "requestrefid",
        "requestitemrefid",
        "patientodscode",
        "nhsnumber",
        "createdtime",
        "sendinggroupname",
        "sendinggroupcreatedtime",
        "billingref",
    ),
    hashed=(("nhsnumber", "nhsnumberhash"),),
    local_dates=(("createdtime", "createddate"), ("completedtime", "completeddate")),
    description="Latest status of every request item changed in the projection window (pass 1).",
    partition_by="createddate",
)
REQUEST_ITEM_PLAN_STATUS = ProjectionSpec(
    table="request_item_plan_status",
    key="requestitemplanid",
    dimensions=(
        *ITEM_IDENTITY_FIELDS,
        "communicationtype",
        "supplier",
        "channeltype",
        "ordernumber",
        "createdtime",
        "sendtime",
        "contactdetailsource",
        "recipientcontactid",
        "templateid",
        "specificationid",
        "specificationbillingid",
        "messagelength",
        "messagelengthunits",
        "senderodscode",
    ),
    local_dates=(("createdtime", "createddate"), ("completedtime", "completeddate")),
    description=(
        "Latest status of every request item plan (one channel of an item) changed in the "
        "projection window (pass 1)."
    ),
    partition_by="createddate",
)
CLIENT_LATEST_NAME = ProjectionSpec(
    table="client_latest_name",
    key="clientid",
    dimensions=("clientname", "createdtime"),
    description=(
        "Each client's latest name: that of its newest request item (by creation time) in "
        "the projection window (pass 1)."
    ),
)
PROJECTIONS: tuple[ProjectionSpec, ...] = (
    REQUEST_ITEM_STATUS,
    REQUEST_ITEM_PLAN_STATUS,
    CLIENT_LATEST_NAME,
)

CHANNELS = ("NHSAPP", "EMAIL", "SMS", "LETTER")


def _count_where(condition: str) -> str:
    return f"CAST(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS BIGINT)"


# NHS Notify's request item counts: running totals, except outstandingcount, which
# falls as items finish. The per-channel counts read the item's channel lists.
ITEM_COUNTS: tuple[tuple[str, str], ...] = (
    ("requestedcount", "CAST(COUNT(DISTINCT requestitemid) AS BIGINT)"),
    ("deliveredcount", _count_where("status = 'DELIVERED'")),
    ("failedcount", _count_where("status = 'FAILED'")),
    ("completedcount", _count_where("status IN ('DELIVERED', 'FAILED')")),
    ("outstandingcount", _count_where("status NOT IN ('DELIVERED', 'FAILED')")),
    *(
        (
            f"{channel.lower()}{outcome}count",
            _count_where(f"list_contains({lists}, '{channel}')"),
        )
        for outcome, lists in (
            ("delivered", "completedcommunicationtypes"),
            ("failed", "failedcommunicationtypes"),
        )
        for channel in CHANNELS
    ),
)
PLAN_COUNTS: tuple[tuple[str, str], ...] = (
    ("requestitemcount", "CAST(COUNT(DISTINCT requestitemid) AS BIGINT)"),
)
ITEM_SUMMARY_DIMENSIONS = ("clientid", "campaignid", "sendinggroupid", "sendinggroupidversion")
# A batch is one request: the batch tables add its ids to the dimensions.
BATCH_DIMENSIONS = ("requestrefid", "requestid")
PLAN_SUMMARY_DIMENSIONS = (
    "clientid",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    "communicationtype",
    "supplier",
    "createddate",
    "completeddate",
    "status",
    "failedreason",
    "contactdetailsource",
    "channeltype",
)

REQUEST_ITEM_STATUS_SUMMARY = AggregationSpec(
    table="request_item_status_summary",
    source="request_item_status",
    dimensions=(*ITEM_SUMMARY_DIMENSIONS, "createddate"),
    measures=ITEM_COUNTS,
    current=("outstandingcount",),
    description=(
        "Request items per client, campaign, sending group (and version) and created day: "
        "requested, delivered, failed, completed and outstanding, and delivered and failed "
        "per channel; totals never fall (pass 2)."
    ),
)
REQUEST_ITEM_STATUS_SUMMARY_BATCH = AggregationSpec(
    table="request_item_status_summary_batch",
    source="request_item_status",
    dimensions=(*ITEM_SUMMARY_DIMENSIONS, *BATCH_DIMENSIONS, "createddate"),
    measures=ITEM_COUNTS,
    current=("outstandingcount",),
    description=(
        "request_item_status_summary per batch (request) as well, for the clients listed in "
        "reporting.batch_client_ids (pass 2)."
    ),
    batch_clients_only=True,
)
REQUEST_ITEM_PLAN_COMPLETED_SUMMARY = AggregationSpec(
    table="request_item_plan_completed_summary",
    source="request_item_plan_status",
    dimensions=PLAN_SUMMARY_DIMENSIONS,
    measures=PLAN_COUNTS,
    where="status IN ('DELIVERED', 'FAILED')",
    description=(
        "Delivered and failed request item plans per client, campaign, sending group, "
        "channel, supplier, created and completed day, status, reason and contact detail "
        "source; totals never fall (pass 2)."
    ),
)
REQUEST_ITEM_PLAN_COMPLETED_SUMMARY_BATCH = AggregationSpec(
    table="request_item_plan_completed_summary_batch",
    source="request_item_plan_status",
    dimensions=(*PLAN_SUMMARY_DIMENSIONS[:4], *BATCH_DIMENSIONS, *PLAN_SUMMARY_DIMENSIONS[4:]),
    measures=PLAN_COUNTS,
    where="status IN ('DELIVERED', 'FAILED')",
    description=(
        "request_item_plan_completed_summary per batch (request) as well, for the clients "
        "listed in reporting.batch_client_ids (pass 2)."
    ),
    batch_clients_only=True,
)
AGGREGATIONS: tuple[AggregationSpec, ...] = (
    REQUEST_ITEM_STATUS_SUMMARY,
    REQUEST_ITEM_STATUS_SUMMARY_BATCH,
    REQUEST_ITEM_PLAN_COMPLETED_SUMMARY,
    REQUEST_ITEM_PLAN_COMPLETED_SUMMARY_BATCH,
)


def project(
    spec: ProjectionSpec,
    history: pa.Table | pa_ds.Dataset,
    *,
    pseudonymise: Callable[[str], str],
    tz: str,
    hash_identifier: Callable[[str], str] | None = None,
) -> pa.Table:
    """The latest row per key of a window of transaction history.

    Args:
        spec: which projection.
        history: the window's transaction-history records (those of the files landed
            in it, NHS Notify's window), as a table or a lazy dataset.
        pseudonymise: keyed hash for the ``spec.hashed`` columns and the tie-break.
        tz: the reporting time zone, for the local date columns.
        hash_identifier: the hash of the ``spec.hashed`` columns when it is not
            ``pseudonymise`` (NHS Notify's construction, ``reporting.nhsnumber_hash``).

    Returns:
        One row per key, with ``timestamp`` and ``_rank`` for the MERGE.
    """
    latest = run_sql(spec.table, {"transaction_history": history}, {})
    for source, target in spec.hashed:
        latest = latest.drop_columns([source]).append_column(
            target,
            _hash_distinct(
                latest[source], hash_identifier or pseudonymise, HASH_NORMALISERS.get(source)
            ),
        )
    rank_at = latest.schema.get_field_index("_rank")
    latest = latest.set_column(rank_at, "_rank", keyed_rank(latest["_rank"], pseudonymise))
    for source, target in spec.local_dates:
        latest = latest.append_column(target, local_dates(latest[source], tz))
    return latest


def keyed_rank(rank: pa.ChunkedArray, pseudonymise: Callable[[str], str]) -> pa.Array:
    """``_rank`` with its content hash replaced by a keyed hash; the terminal flag stays first."""
    flag = pc.utf8_slice_codeunits(rank, 0, 1)
    digest = _hash_distinct(pc.utf8_slice_codeunits(rank, 1), pseudonymise)
    return pc.binary_join_element_wise(flag, digest, "")


def _hash_distinct(
    values: pa.ChunkedArray,
    pseudonymise: Callable[[str], str],
    normalise: Callable[[str], str | None] | None = None,
) -> pa.Array:
    """Keyed hashes of a column, computing each distinct value's hash once (nulls stay null).

    The hash is a Python call per value; a patient's identifier repeats across their
    items, so hashing the dictionary and gathering by index does less of them. With
    ``normalise``, each value is hashed in its normal form, and one it rejects is null.
    """
    encoded = pc.dictionary_encode(values.combine_chunks())
    distinct = encoded.dictionary.to_pylist()
    if normalise is not None:
        distinct = [normalise(v) for v in distinct]
    hashed = pa.array([None if v is None else pseudonymise(v) for v in distinct], type=pa.string())
    return hashed.take(encoded.indices)


def projection_merge_clauses(
    spec: ProjectionSpec, columns: list[str]
) -> list[tuple[str | None, dict[str, str]]]:
    """The MERGE's WHEN MATCHED clauses for a projection, in order.

    1. A newer record replaces the row; a dimension it lacks keeps the stored value.
    2. An older record only fills dimensions the stored row lacks.
    """
    dimensions = [c for c in spec.all_dimensions() if c in columns]
    newer = {
        name: f"coalesce(s.`{name}`, t.`{name}`)" if name in dimensions else f"s.`{name}`"
        for name in columns
        if name != spec.key
    }
    clauses: list[tuple[str | None, dict[str, str]]] = [(NEWER, newer)]
    if dimensions:
        fill_condition = " OR ".join(
            f"(t.`{d}` IS NULL AND s.`{d}` IS NOT NULL)" for d in dimensions
        )
        fill = {d: f"coalesce(t.`{d}`, s.`{d}`)" for d in dimensions}
        clauses.append((fill_condition, fill))
    return clauses
