"""The reporting tables' data dictionary: every column's name, type and meaning.

One entry per published ``reporting/<table>``, columns in the order the Delta table
stores them (the SQL's select list, then the pseudonyms and local dates that
``staging.project`` appends). Types use the names ``assets.metadata`` shows for stored
tables (``string``, ``bigint``, ``timestamp``, ``date``; ``array<string>`` for a list
of strings). ``tests/assets/test_reporting_dictionary.py`` builds every table and
fails when a name or type here differs from what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ReportingColumn:
    """One column of a reporting table, as the data dictionary shows it."""

    name: str
    type: str
    description: str


# Columns several tables share, described once.
_SHARED: dict[str, tuple[str, str]] = {
    "clientid": ("string", "NHS Notify client (the organisation sending messages)."),
    "campaignid": ("string", "Client campaign the request belongs to; null when none."),
    "sendinggroupid": ("string", "Sending group (message template set) used."),
    "sendinggroupidversion": ("string", "Version of the sending group used."),
    "requestid": ("string", "Request (one client submission) the item belongs to."),
    "requestrefid": ("string", "Client's own reference for the request."),
    "requestitemid": ("string", "Request item: one recipient of a request."),
    "requestitemrefid": ("string", "Client's own reference for the request item."),
    "communicationtype": ("string", "Channel of the plan: NHSAPP, EMAIL, SMS or LETTER."),
    "supplier": ("string", "Supplier that delivers on the channel."),
    "channeltype": ("string", "primary or secondary (fallback) channel of the item."),
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
        ("status", "string", "Latest item status (COMPLETED and FAILED are final)."),
        "failedreason",
        "failedreasoncode",
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
        "timestamp",
        "_rank",
        "createddate",
        "completeddate",
    ),
    "client_latest_name": _columns(
        ("clientid", "string", "NHS Notify client (the key)."),
        ("clientname", "string", "The client's latest name in the window."),
        ("createdtime", "timestamp", "When the client was created (UTC)."),
        "timestamp",
        "_rank",
    ),
    "request_item_status_summary": _columns(
        "clientid",
        "campaignid",
        "sendinggroupid",
        ("createddate", "date", "Day the items were created (Europe/London)."),
        ("requesteditemcount", "bigint", "Request items created (running total)."),
        ("completeditemcount", "bigint", "Items COMPLETED (running total)."),
        ("faileditemcount", "bigint", "Items FAILED (running total)."),
        ("outstandingitemcount", "bigint", "Items not yet in a final state (point in time)."),
    ),
    "request_item_plan_completed_summary": _columns(
        "clientid",
        "campaignid",
        "sendinggroupid",
        "sendinggroupidversion",
        "communicationtype",
        "supplier",
        "channeltype",
        ("createddate", "date", "Day the plans were created (Europe/London)."),
        ("completeddate", "date", "Day the plans were delivered or failed (Europe/London)."),
        ("status", "string", "DELIVERED or FAILED."),
        "failedreason",
        "failedreasoncode",
        (
            "requestitemcount",
            "bigint",
            "Distinct request items with a plan in this group (running total).",
        ),
    ),
}
