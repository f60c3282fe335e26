"""NHS Notify's reporting ingestion, restated in DuckDB SQL of our own, as a yardstick.

NHS Notify keeps its seven staging tables with scheduled Athena MERGE statements
(``scripts/sql/ingestion`` of their reporting component). ``NhsNotifyModel`` replays
their rules, cycle by cycle, over our bronze table, which holds the records of their
raw CDC table with the landing folders (``__year=/__month=/__day=``) in each record's
``_source_file``. The rules, learnt from their code and written here afresh:

* The projections read the request-item (or plan) records of the files that landed
  today or in the 7 days before (``CURRENT_DATE`` is the run's UTC date). Per key the
  record with the greatest ``timestamp`` wins, one with a completion time first on a
  tie. It replaces the stored row only when its ``timestamp`` is greater, and then
  every column, nulls included, comes from it.
* ``client_latest_name`` takes, per client, the name on the request item of that
  window created last. It replaces the stored row only for a later creation time.
* The summaries group the projection rows created (UTC date) since the same day a
  month ago. They match stored groups on their dimensions, reading NULL as ''. When
  any running total rose, a stored group takes every new count, including
  ``outstandingcount``.

Where their rule leaves the result to chance (a tie their ordering does not break),
the model counts the keys concerned in ``ambiguous``, so a test knows to treat those
keys as undecided rather than as a difference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa


def _count_where(condition: str) -> str:
    return f"count(*) FILTER (WHERE {condition})"


ITEM_MEASURES = {
    "requestedcount": "count(DISTINCT requestitemid)",
    "deliveredcount": _count_where("status = 'DELIVERED'"),
    "failedcount": _count_where("status = 'FAILED'"),
    "completedcount": _count_where("status IN ('DELIVERED', 'FAILED')"),
    "outstandingcount": _count_where("status NOT IN ('DELIVERED', 'FAILED')"),
    **{
        f"{channel.lower()}{outcome}count": _count_where(f"list_contains({lists}, '{channel}')")
        for outcome, lists in (
            ("delivered", "completedcommunicationtypes"),
            ("failed", "failedcommunicationtypes"),
        )
        for channel in ("NHSAPP", "EMAIL", "SMS", "LETTER")
    },
}
PLAN_MEASURES = {"requestitemcount": "count(DISTINCT requestitemid)"}
ITEM_COUNTS = tuple(ITEM_MEASURES)
# A running total only rises; outstandingcount falls as items finish.
POINT_IN_TIME_COUNTS = ("outstandingcount",)
ITEM_SUMMARY_DIMENSIONS = tuple(
    "clientid campaignid sendinggroupid sendinggroupidversion createddate".split()
)
ITEM_BATCH_DIMENSIONS = (*ITEM_SUMMARY_DIMENSIONS[:4], "requestrefid", "requestid", "createddate")
PLAN_SUMMARY_DIMENSIONS = tuple(
    """
    clientid campaignid sendinggroupid sendinggroupidversion communicationtype supplier
    createddate completeddate status failedreason contactdetailsource channeltype
    """.split()
)
PLAN_BATCH_DIMENSIONS = (
    *PLAN_SUMMARY_DIMENSIONS[:4],
    "requestrefid",
    "requestid",
    *PLAN_SUMMARY_DIMENSIONS[4:],
)

# NHS Notify's columns of each table: its CREATE TABLE and the columns Terraform adds.
NHS_COLUMNS: dict[str, tuple[str, ...]] = {
    "request_item_status": tuple(
        """
        clientid campaignid sendinggroupid sendinggroupidversion sendinggroupname
        sendinggroupcreatedtime requestitemrefid requestitemid requestrefid requestid
        nhsnumberhash createdtime completedtime completedcommunicationtypes
        failedcommunicationtypes status failedreason patientodscode billingref
        failedreasoncode timestamp
        """.split()
    ),
    "request_item_plan_status": tuple(
        """
        clientid campaignid sendinggroupid sendinggroupidversion requestitemrefid
        requestitemid requestrefid requestid requestitemplanid communicationtype supplier
        createdtime completedtime sendtime status failedreason contactdetailsource
        channeltype ordernumber recipientcontactid templateid failedreasoncode
        specificationid specificationbillingid messagelength messagelengthunits
        senderodscode timestamp
        """.split()
    ),
    "client_latest_name": ("clientid", "clientname", "createdtime"),
    "request_item_status_summary": (*ITEM_SUMMARY_DIMENSIONS, *ITEM_COUNTS),
    "request_item_status_summary_batch": (*ITEM_BATCH_DIMENSIONS, *ITEM_COUNTS),
    "request_item_plan_completed_summary": (*PLAN_SUMMARY_DIMENSIONS, "requestitemcount"),
    "request_item_plan_completed_summary_batch": (*PLAN_BATCH_DIMENSIONS, "requestitemcount"),
}
# What identifies a row: the projections' key, the summaries' dimensions.
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "request_item_status": ("requestitemid",),
    "request_item_plan_status": ("requestitemplanid",),
    "client_latest_name": ("clientid",),
    "request_item_status_summary": ITEM_SUMMARY_DIMENSIONS,
    "request_item_status_summary_batch": ITEM_BATCH_DIMENSIONS,
    "request_item_plan_completed_summary": PLAN_SUMMARY_DIMENSIONS,
    "request_item_plan_completed_summary_batch": PLAN_BATCH_DIMENSIONS,
}

# Their raw table's partition columns, read back from the landing key of each record.
LANDING_DAY = (
    "make_date("
    + ", ".join(
        f"CAST(regexp_extract(_source_file, '__{part}=([0-9]+)', 1) AS INTEGER)"
        for part in ("year", "month", "day")
    )
    + ")"
)
IN_WEEK_WINDOW = f"{LANDING_DAY} >= CAST($today - INTERVAL 1 WEEK AS DATE)"


def newest_record(records: str, key: str) -> str:
    """The newest record per key of a CTE, as their ROW_NUMBER does: greatest timestamp,
    one with a completion time first on a tie; ``candidates`` counts the records still
    tied after that, which their ordering leaves to chance."""
    return f"""SELECT * EXCLUDE (_record_hash, place)
FROM (
    SELECT
        *,
        row_number() OVER newest_first AS place,
        count(DISTINCT _record_hash) OVER equally_new AS candidates
    FROM {records}
    WINDOW
        newest_first AS (
            PARTITION BY {key}
            ORDER BY "timestamp" DESC, completedtime IS NULL, _record_hash
        ),
        equally_new AS (PARTITION BY {key}, "timestamp", completedtime IS NULL)
)
WHERE place = 1"""


ITEM_SOURCE = f"""
WITH item_records AS (
    SELECT
        clientid, campaignid, sendinggroupid, sendinggroupidversion, sendinggroupname,
        sendinggroupcreateddate AS sendinggroupcreatedtime,
        requestitemrefid, requestitemid, requestrefid, requestid,
        to_base64(unhex(sha256($key || '.' || nhsnumber))) AS nhsnumberhash,
        createddate AS createdtime,
        completeddate AS completedtime,
        completedcommunicationtypes, failedcommunicationtypes,
        status, failedreason, patientodscode, billingref, failedreasoncode,
        "timestamp", _record_hash
    FROM history
    WHERE sk LIKE 'REQUEST_ITEM#%' AND {IN_WEEK_WINDOW}
)
{newest_record("item_records", "requestitemid")}
"""

PLAN_SOURCE = f"""
WITH plan_records AS (
    SELECT
        clientid, campaignid, sendinggroupid, sendinggroupidversion,
        requestitemrefid, requestitemid, requestrefid, requestid, requestitemplanid,
        communicationtype, supplier,
        createddate AS createdtime,
        completeddate AS completedtime,
        datesent AS sendtime,
        status, failedreason, contactdetailsource, channeltype, ordernumber,
        recipientcontactid,
        coalesce(
            templateid,
            CAST(json_extract(_extra, '$.templates.suppliers') AS MAP(VARCHAR, VARCHAR))
                [lower(supplier)]
        ) AS templateid,
        failedreasoncode, specificationid, specificationbillingid,
        messagelength, messagelengthunits, senderodscode,
        "timestamp", _record_hash
    FROM history
    WHERE sk LIKE 'REQUEST_ITEM_PLAN#%' AND {IN_WEEK_WINDOW}
)
{newest_record("plan_records", "requestitemplanid")}
"""

CLIENT_SOURCE = f"""
WITH item_names AS (
    SELECT
        clientid,
        clientname,
        createddate,
        createddate = max(createddate) OVER (PARTITION BY clientid) AS created_last
    FROM history
    WHERE sk LIKE 'REQUEST_ITEM#%' AND {IN_WEEK_WINDOW}
)
SELECT
    clientid,
    arg_max_null(clientname, createddate) AS clientname,
    max(createddate) AS createdtime,
    count(DISTINCT clientname) FILTER (WHERE created_last) AS candidates
FROM item_names
GROUP BY clientid
"""


@dataclass(frozen=True)
class Summary:
    """One of their summary tables: which projection, grouped how, counting what."""

    table: str
    source: str
    dimensions: tuple[str, ...]
    measures: Mapping[str, str]
    condition: str = "TRUE"
    batch_clients_only: bool = False

    def query(self) -> str:
        """The grouping over the projection rows created since a month before today."""
        dated = {
            "createddate": "CAST(createdtime AS DATE)",
            "completeddate": "CAST(completedtime AS DATE)",
        }
        columns = [f"{dated.get(d, d)} AS {d}" for d in self.dimensions]
        columns += [f"{expression} AS {name}" for name, expression in self.measures.items()]
        filters = [self.condition, "CAST(createdtime AS DATE) >= $today - INTERVAL 1 MONTH"]
        if self.batch_clients_only:
            filters.append("list_contains($batch_clients, clientid)")
        return (
            f"SELECT {', '.join(columns)} FROM {self.source} "
            f"WHERE {' AND '.join(filters)} GROUP BY ALL"
        )


DELIVERED_OR_FAILED = "status IN ('DELIVERED', 'FAILED')"
SUMMARIES = (
    Summary(
        "request_item_status_summary",
        "request_item_status",
        ITEM_SUMMARY_DIMENSIONS,
        ITEM_MEASURES,
    ),
    Summary(
        "request_item_status_summary_batch",
        "request_item_status",
        ITEM_BATCH_DIMENSIONS,
        ITEM_MEASURES,
        batch_clients_only=True,
    ),
    Summary(
        "request_item_plan_completed_summary",
        "request_item_plan_status",
        PLAN_SUMMARY_DIMENSIONS,
        PLAN_MEASURES,
        condition=DELIVERED_OR_FAILED,
    ),
    Summary(
        "request_item_plan_completed_summary_batch",
        "request_item_plan_status",
        PLAN_BATCH_DIMENSIONS,
        PLAN_MEASURES,
        condition=DELIVERED_OR_FAILED,
        batch_clients_only=True,
    ),
)


def query(sql: str, tables: Mapping[str, pa.Table], params: Mapping[str, Any]) -> pa.Table:
    """Run DuckDB SQL over Arrow tables in UTC (Athena's zone), with bound parameters."""
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        for name, data in tables.items():
            connection.register(name, data)
        named = {name: value for name, value in params.items() if f"${name}" in sql}
        result: pa.Table = connection.sql(sql, params=named or None).to_arrow_table()
        return result
    finally:
        connection.close()


def replace_when_newer(target: pa.Table | None, source: pa.Table, key: str, order: str) -> pa.Table:
    """Their projection MERGE: a source row is inserted when new, replaces when newer."""
    if target is None:
        return source
    same = f"s.{key} = t.{key}"
    return query(
        f"""
        SELECT t.* FROM target AS t
        WHERE NOT EXISTS (
            SELECT 1 FROM source AS s WHERE {same} AND s."{order}" > t."{order}")
        UNION ALL BY NAME
        SELECT s.* FROM source AS s
        WHERE NOT EXISTS (
            SELECT 1 FROM target AS t WHERE {same} AND (s."{order}" > t."{order}") IS NOT TRUE)
        """,
        {"target": target, "source": source},
        {},
    )


def replace_counts_when_any_total_rose(
    target: pa.Table | None, source: pa.Table, summary: Summary
) -> pa.Table:
    """Their summary MERGE: groups match with NULL read as ''; a rise replaces all counts."""
    if target is None:
        return source
    same = " AND ".join(
        f"coalesce(CAST(s.{d} AS VARCHAR), '') = coalesce(CAST(t.{d} AS VARCHAR), '')"
        for d in summary.dimensions
    )
    rose = " OR ".join(f"s.{m} > t.{m}" for m in summary.measures if m not in POINT_IN_TIME_COUNTS)
    dimensions = ", ".join(f"t.{d}" for d in summary.dimensions)
    counts = ", ".join(f"s.{m}" for m in summary.measures)
    return query(
        f"""
        SELECT t.* FROM target AS t
        WHERE NOT EXISTS (SELECT 1 FROM source AS s WHERE {same} AND ({rose}))
        UNION ALL BY NAME
        SELECT {dimensions}, {counts} FROM target AS t JOIN source AS s ON {same}
        WHERE {rose}
        UNION ALL BY NAME
        SELECT s.* FROM source AS s
        WHERE NOT EXISTS (SELECT 1 FROM target AS t WHERE {same})
        """,
        {"target": target, "source": source},
        {},
    )


@dataclass
class NhsNotifyModel:
    """NHS Notify's seven staging tables, kept by replaying their ingestion each cycle.

    Attributes:
        key: the pseudonymisation key their NHS-number hash is salted with.
        batch_client_ids: the clients of their ``_batch`` tables.
        tables: each table as it stands after the last cycle.
        ambiguous: per projection, winners their ordering left to chance, over all cycles.
    """

    key: str
    batch_client_ids: tuple[str, ...]
    tables: dict[str, pa.Table] = field(default_factory=dict)
    ambiguous: Counter[str] = field(default_factory=Counter)

    def cycle(self, history: pa.Table, as_of: datetime) -> None:
        """One scheduled run at ``as_of``: the three projections, then the four summaries."""
        params = {
            "today": as_of.astimezone(UTC).date(),
            "key": self.key,
            "batch_clients": list(self.batch_client_ids),
        }
        for table, sql, key, order in (
            ("request_item_status", ITEM_SOURCE, "requestitemid", "timestamp"),
            ("request_item_plan_status", PLAN_SOURCE, "requestitemplanid", "timestamp"),
            ("client_latest_name", CLIENT_SOURCE, "clientid", "createdtime"),
        ):
            source = query(sql, {"history": history}, params)
            self.ambiguous[table] += sum(1 for n in source["candidates"].to_pylist() if n > 1)
            source = source.drop_columns(["candidates"])
            self.tables[table] = replace_when_newer(self.tables.get(table), source, key, order)
        for summary in SUMMARIES:
            grouped = query(summary.query(), {summary.source: self.tables[summary.source]}, params)
            self.tables[summary.table] = replace_counts_when_any_total_rose(
                self.tables.get(summary.table), grouped, summary
            )


def _comparable(value: Any) -> Any:
    """A value as both sides can be held to: lists as tuples, instants in UTC."""
    if isinstance(value, list):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _rows_by_key(
    data: pa.Table, key: Sequence[str], columns: Sequence[str], side: str, problems: list[str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in data.select(list(columns)).to_pylist():
        values = {name: _comparable(value) for name, value in row.items()}
        identity = tuple(values[k] for k in key)
        if identity in rows:
            problems.append(f"{side} holds key {identity} more than once")
        rows[identity] = values
    return rows


def table_differences(
    ours: pa.Table,
    theirs: pa.Table,
    key: Sequence[str],
    columns: Sequence[str],
    *,
    limit: int = 5,
) -> list[str]:
    """Readable differences between two tables on ``columns``, rows matched on ``key``.

    Empty when the tables hold the same rows; otherwise at most ``limit`` lines of each
    kind (duplicate keys, rows on one side only, differing values) and their totals.
    """
    duplicates: list[str] = []
    mine = _rows_by_key(ours, key, columns, "ours", duplicates)
    nhs = _rows_by_key(theirs, key, columns, "NHS Notify's", duplicates)
    only_ours = sorted(mine.keys() - nhs.keys(), key=repr)
    only_theirs = sorted(nhs.keys() - mine.keys(), key=repr)
    changed = []
    for identity in sorted(mine.keys() & nhs.keys(), key=repr):
        differing = [c for c in columns if mine[identity][c] != nhs[identity][c]]
        if differing:
            detail = "; ".join(
                f"{c}: ours {mine[identity][c]!r}, NHS Notify's {nhs[identity][c]!r}"
                for c in differing
            )
            changed.append(f"key {identity}: {detail}")
    report = duplicates[:limit]
    for label, items in (
        ("only in ours", [f"key {k}: {mine[k]}" for k in only_ours]),
        ("only in NHS Notify's", [f"key {k}: {nhs[k]}" for k in only_theirs]),
        ("differing", changed),
    ):
        if items:
            report.append(f"{len(items)} row(s) {label}, e.g.:")
            report.extend(f"  {line}" for line in items[:limit])
    return report
