"""The reporting tables' data dictionary: every column's name, type and meaning.

One entry per published ``reporting/<table>``, columns in the order the Delta table
stores them (the SQL's select list, then the pseudonyms and local dates that
``staging.project`` appends). Types use the names ``assets.metadata`` shows for stored
tables (``string``, ``bigint``, ``timestamp``, ``date``; ``array<string>`` for a list
of strings). ``tests/assets/test_reporting_dictionary.py`` builds every table and
fails when a name or type here differs from what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class ReportingColumn:
    """One column of a reporting table, as the data dictionary shows it."""

    name: str
    type: str
    description: str


_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "array<string>": pa.list_(pa.string()),
}


def arrow_schema(columns: Sequence[ReportingColumn]) -> pa.Schema:
    """The Arrow schema a dictionary's columns describe."""
    return pa.schema([(c.name, _ARROW_TYPES[c.type]) for c in columns])


# Columns several tables share, described once.
_SHARED: dict[str, tuple[str, str]] = {
    "clientid": ("string", "NHS Notify client (the organisation sending messages)."),
    "campaignid": ("string", "Client campaign the request belongs to; null when none."),
    "sendinggroupid": ("string", "Sending group (message template set) used."),
    "sendinggroupidversion": ("string", "Version of the sending group used."),
    "requestid": ("string", "Request (one client submission, a batch) the item belongs to."),
    "requestrefid": ("string", "Client's own reference for the request."),
    "requestitemid": ("string", "Request item: one recipient of a request."),
    "requestitemrefid": ("string", "Client's own reference for the request item."),
    "communicationtype": ("string", "Channel of the plan: NHSAPP, EMAIL, SMS or LETTER."),
    "supplier": ("string", "Supplier that delivers on the channel."),
    "channeltype": ("string", "primary or secondary (fallback) channel of the item."),
    "contactdetailsource": (
        "string",
        "Where the contact details came from: PDS or the client (CLIENT).",
    ),
    "createdtime": ("timestamp", "When the entity was created (UTC)."),
    "completedtime": ("timestamp", "When the entity reached a final state (UTC); null until then."),
    "createddate": ("date", "createdtime as a Europe/London calendar date."),
    "completeddate": ("date", "completedtime as a Europe/London calendar date."),
    "status": ("string", "Latest status of the entity."),
    "failedreason": ("string", "Why it failed; null unless status is FAILED."),
    "failedreasoncode": ("string", "Code of the failure reason; null unless failed."),
    "timestamp": ("bigint", "Change time of the winning CDC record (epoch milliseconds)."),
    "_rank": (
        "string",
        "Tie-break of records with equal timestamp (terminal flag then a keyed hash of "
        "the record); internal to the MERGE.",
    ),
}


def _columns(*entries: str | tuple[str, str, str]) -> tuple[ReportingColumn, ...]:
    """Shared column names, or (name, type, description) for a table's own columns."""
    return tuple(
        ReportingColumn(entry, *_SHARED[entry])
        if isinstance(entry, str)
        else ReportingColumn(*entry)
        for entry in entries
    )


_ITEM_COUNTS: tuple[tuple[str, str, str], ...] = (
    ("requestedcount", "bigint", "Request items created (running total)."),
    ("deliveredcount", "bigint", "Items DELIVERED (running total)."),
    ("failedcount", "bigint", "Items FAILED (running total)."),
    ("completedcount", "bigint", "Items DELIVERED or FAILED (running total)."),
    ("outstandingcount", "bigint", "Items not yet in a final state (point in time)."),
    *(
        (
            f"{channel.lower()}{outcome}count",
            "bigint",
            f"Items {outcome} on {channel} (running total).",
        )
        for outcome in ("delivered", "failed")
        for channel in ("NHSAPP", "EMAIL", "SMS", "LETTER")
    ),
)
_Entry = str | tuple[str, str, str]
_CREATED_DAY: _Entry = ("createddate", "date", "Day the items were created (Europe/London).")
_ITEM_SUMMARY: tuple[_Entry, ...] = (
    "clientid",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    _CREATED_DAY,
    *_ITEM_COUNTS,
)
_ITEM_SUMMARY_BATCH: tuple[_Entry, ...] = (
    *_ITEM_SUMMARY[:4],
    "requestrefid",
    "requestid",
    *_ITEM_SUMMARY[4:],
)
_PLAN_SUMMARY: tuple[_Entry, ...] = (
    "clientid",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    "communicationtype",
    "supplier",
    ("createddate", "date", "Day the plans were created (Europe/London)."),
    ("completeddate", "date", "Day the plans were delivered or failed (Europe/London)."),
    ("status", "string", "DELIVERED or FAILED."),
    "failedreason",
    "contactdetailsource",
    "channeltype",
    (
        "requestitemcount",
        "bigint",
        "Distinct request items with a plan in this group (running total).",
    ),
)
_PLAN_SUMMARY_BATCH: tuple[_Entry, ...] = (
    *_PLAN_SUMMARY[:4],
    "requestrefid",
    "requestid",
    *_PLAN_SUMMARY[4:],
)

REPORTING_COLUMNS: Mapping[str, tuple[ReportingColumn, ...]] = {
    "request_item_status": _columns(
        ("requestitemid", "string", "Request item: one recipient of a request (the key)."),
        "clientid",
        "campaignid",
        "sendinggroupid",
        "sendinggroupidversion",
        "requestid",
        "requestrefid",
        "requestitemrefid",
        ("patientodscode", "string", "ODS code of the recipient's GP practice."),
        "createdtime",
        "completedtime",
        (
            "completedcommunicationtypes",
            "array<string>",
            "Channels on which the item was delivered.",
        ),
        ("failedcommunicationtypes", "array<string>", "Channels on which the item failed."),
        ("status", "string", "Latest item status (DELIVERED and FAILED are final)."),
        "failedreason",
        "failedreasoncode",
        ("sendinggroupname", "string", "Name of the sending group."),
        ("sendinggroupcreatedtime", "timestamp", "When the sending group was created (UTC)."),
        ("billingref", "string", "Client's billing reference for the item; null when none."),
        "timestamp",
        "_rank",
        (
            "nhsnumberhash",
            "string",
            "Pseudonymised recipient: keyed HMAC-SHA256 of the NHS number.",
        ),
        "createddate",
        "completeddate",
    ),
    "request_item_plan_status": _columns(
        (
            "requestitemplanid",
            "string",
            "Request item plan: one channel of one request item (the key).",
        ),
        "clientid",
        "campaignid",
        "sendinggroupid",
        "sendinggroupidversion",
        "requestid",
        "requestrefid",
        "requestitemid",
        "requestitemrefid",
        "communicationtype",
        "supplier",
        "channeltype",
        ("ordernumber", "bigint", "Position of the channel in the item's fallback order."),
        "createdtime",
        "completedtime",
        ("status", "string", "Latest plan status (DELIVERED, FAILED and SKIPPED are final)."),
        "failedreason",
        "failedreasoncode",
        ("sendtime", "timestamp", "When the message was handed to the supplier (UTC)."),
        "contactdetailsource",
        (
            "recipientcontactid",
            "string",
            "Id of the contact detail used (one per recipient and SMS or email address).",
        ),
        ("templateid", "string", "Template of the message, from the record or its supplier map."),
        ("specificationid", "string", "Letter specification; null for other channels."),
        ("specificationbillingid", "string", "Billing id of the letter specification."),
        ("messagelength", "bigint", "Billable length: SMS fragments or letter sheets."),
        ("messagelengthunits", "string", "Unit of messagelength (FRAGMENTS, SHEETS)."),
        ("senderodscode", "string", "ODS code of the sending organisation."),
        "timestamp",
        "_rank",
        "createddate",
        "completeddate",
    ),
    "client_latest_name": _columns(
        ("clientid", "string", "NHS Notify client (the key)."),
        ("clientname", "string", "Client name on its newest request item."),
        ("createdtime", "timestamp", "When that newest request item was created (UTC)."),
        (
            "timestamp",
            "bigint",
            "createdtime in epoch milliseconds: the order in which a row moves forward.",
        ),
        "_rank",
    ),
    "request_item_status_summary": _columns(*_ITEM_SUMMARY),
    "request_item_status_summary_batch": _columns(*_ITEM_SUMMARY_BATCH),
    "request_item_plan_completed_summary": _columns(*_PLAN_SUMMARY),
    "request_item_plan_completed_summary_batch": _columns(*_PLAN_SUMMARY_BATCH),
}
