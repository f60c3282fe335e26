"""NHS Notify's reporting views, recomputed in full as tables a report tool can query.

NHS Notify defines 23 Athena views over its staging tables. Each is re-expressed here
in DuckDB SQL (``<name>.sql`` beside this module) over our staging tables of the same
names, and published whole each cycle as ``reporting/views/<name>``. A view that reads
another view reads that view's published table, so ``VIEWS`` lists them in dependency
order.

What NHS Notify renders into its SQL becomes a parameter here: ``:as_of_date`` (the UTC
date of the cycle's as-of time, where NHS Notify says ``CURRENT_DATE``), and the SMS
nudge client and the email-filter clients, which arrive as one-column tables
(``sms_nudge_client``, ``email_filter_client``; column ``clientid``) because the SQL
helpers bind only numbers and dates. Dates are UTC where NHS Notify's ``DATE(...)`` is
(Athena runs in UTC), and Europe/London where it converts. ``compute.compute_view``
runs one view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

from transforms.reporting.dictionary import REPORTING_COLUMNS, ReportingColumn

VIEW_SQL_DIR = Path(__file__).parent
SMS_NUDGE_CLIENT = "sms_nudge_client"
EMAIL_FILTER_CLIENT = "email_filter_client"

# Staging tables the views read.
RIS = "request_item_status"
RIPS = "request_item_plan_status"
ITEM_SUMMARY = "request_item_status_summary"
ITEM_SUMMARY_BATCH = "request_item_status_summary_batch"
PLAN_SUMMARY = "request_item_plan_completed_summary"
PLAN_SUMMARY_BATCH = "request_item_plan_completed_summary_batch"

PEOPLE_COUNT_COLUMNS = frozenset({"recipientcount", "totalmonthlyrecipients"})
"""Columns of the views that count distinct recipients (people), not messages."""
RATES_OF_PEOPLE = {"averagemessagesperecipient": "totalmonthlyrecipients"}

AS_OF_DATE = "as_of_date"
SMS_NUDGE_CLIENT_ID = "sms_nudge_client_id"
EMAIL_FILTER_CLIENT_IDS = "email_filter_client_ids"


@dataclass(frozen=True)
class ViewParameters:
    """The values NHS Notify renders into its view SQL, for one cycle."""

    as_of_date: date
    sms_nudge_client_id: str | None = None
    email_filter_client_ids: Sequence[str] = ()


@dataclass(frozen=True)
class ViewSpec:
    """One of NHS Notify's views: its name, what it reads and its columns.

    ``reads`` names staging tables and earlier views; ``parameters`` the
    ``ViewParameters`` fields its SQL uses.
    """

    name: str
    description: str
    reads: tuple[str, ...]
    columns: tuple[ReportingColumn, ...]
    parameters: tuple[str, ...] = ()

    def sql(self) -> str:
        return load_view_sql(self.name)

    @property
    def people_counts(self) -> tuple[str, ...]:
        """Columns counting people (recipients): published under disclosure control."""
        return tuple(c.name for c in self.columns if c.name in PEOPLE_COUNT_COLUMNS)

    @property
    def rates_of_people(self) -> dict[str, str]:
        """Rate columns -> the people count they divide by (suppressed with it)."""
        names = {c.name for c in self.columns}
        return {rate: count for rate, count in RATES_OF_PEOPLE.items() if rate in names}


@cache
def load_view_sql(name: str) -> str:
    """The text of ``views/<name>.sql``."""
    return (VIEW_SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


# -- column dictionary -------------------------------------------------------------------


def _staging(table: str, *names: str) -> tuple[ReportingColumn, ...]:
    """Columns described as the staging table describes them."""
    by_name = {c.name: c for c in REPORTING_COLUMNS[table]}
    return tuple(by_name[n] for n in names)


def _col(name: str, type_: str, description: str) -> ReportingColumn:
    return ReportingColumn(name, type_, description)


def _without_rank(table: str) -> tuple[ReportingColumn, ...]:
    return tuple(c for c in REPORTING_COLUMNS[table] if c.name != "_rank")


_ORIGINATING = (
    _col(
        "originatingclientid", "string", "Client of the nudged-about message (billingref part 1)."
    ),
    _col("originatingcampaignid", "string", "Its campaign (billingref part 2)."),
    _col("originatingbillingref", "string", "Its billing reference (billingref part 3)."),
    _col(
        "originatingrequestitemid", "string", "Its request item (requestitemrefid part 1, by '_')."
    ),
    _col(
        "originatingrequestitemplanid",
        "string",
        "Its request item plan (requestitemrefid part 2, by '_').",
    ),
)
_ORIGINATING_GROUP = _col(
    "originatingsendinggroupid", "string", "Sending group of the original request item."
)
_NUDGE_ITEM = (*_without_rank(RIS), *_ORIGINATING)
_NUDGE_PLAN = (*_without_rank(RIPS), *_ORIGINATING, _ORIGINATING_GROUP)
_UTC_DAY = _col("createddate", "date", "UTC day of createdtime (not the Europe/London day).")
_UTC_MONTH = _col("createdmonth", "date", "First day of the UTC month of createdtime.")
_RECIPIENTS = _col(
    "recipientcount", "bigint", "Recipients (distinct nhsnumberhash values) in the group."
)


def _all_rows(table: str) -> tuple[ReportingColumn, ...]:
    """A batch summary's columns, the request columns null on a client's per-day rows."""
    return tuple(
        _col(c.name, c.type, f"{c.description} Null on a per-day row (client without batches).")
        if c.name in ("requestrefid", "requestid")
        else c
        for c in REPORTING_COLUMNS[table]
    )


_ISO = "as ISO 8601 text in UTC, to the millisecond, ending Z"
_COMPLETED_COMMS = (
    *_staging(RIS, "clientid", "requestid", "requestrefid", "requestitemid", "requestitemrefid"),
    _col("requestitemcompletedtime", "string", f"When the item completed, {_ISO}."),
    _col("requestitemfailedreason", "string", "Why the item failed; null unless FAILED."),
    *_staging(RIS, "sendinggroupid", "sendinggroupidversion", "sendinggroupname"),
    _col("sendinggroupcreatedtime", "string", f"When the sending group was created, {_ISO}."),
    _col("requestitemstatus", "string", "Latest status of the item."),
    _col("requestitemplanid", "string", "The completed plan; null for a failed item without one."),
    _col("requestitemplancompletedtime", "string", f"When the plan completed, {_ISO}."),
    _col("requestitemplanstatus", "string", "FAILED, DELIVERED or SKIPPED; null without a plan."),
    *_staging(RIPS, "communicationtype", "channeltype"),
    _col("requestitemplanfailedreason", "string", "Why the plan failed; null unless FAILED."),
    *_staging(RIPS, "templateid"),
    _col("requestitemplanfailedreasoncode", "string", "Code of the plan's failure reason."),
    _col("requestitemfailedreasoncode", "string", "Code of the item's failure reason."),
)
_BILLING = (
    _col("billingdate", "date", "UTC day the plan completed."),
    _col("clientid", "string", "Client billed: the plan's, or for a nudge the original's."),
    _col("campaignid", "string", "Campaign billed (for a nudge, the original's)."),
    _col("billingref", "string", "Billing reference of the item (for a nudge, the original's)."),
    _col("senderodscode", "string", "ODS code of the sender (for a nudge, the original plan's)."),
    *_staging(
        RIPS,
        "communicationtype",
        "specificationid",
        "specificationbillingid",
        "messagelength",
        "messagelengthunits",
    ),
    _col("messagecount", "bigint", "Billable plans in the group."),
)
_DELIVERED = (
    _UTC_DAY,
    _UTC_MONTH,
    *_staging(RIS, "nhsnumberhash", "clientid"),
    _col("communicationtype", "string", "A channel the item was delivered on."),
    *_staging(RIS, "requestitemid"),
)
_RAW_LATENCY = (
    *_staging(RIPS, "clientid", "campaignid", "sendinggroupid", "communicationtype"),
    _col(
        "starttime",
        "timestamp",
        "Start of the latency: the request's first item creation, or the previous channels' "
        "latest completion (UTC).",
    ),
    _col("endtime", "timestamp", "When the plan was sent (UTC)."),
)
_LETTER_UNITS = _col("unitcount", "bigint", "Delivered letters invoiced in the period.")
_LETTER_DIMENSIONS = _staging(RIPS, "clientid", "campaignid", "supplier")
_MONTHLY_COUNT = _col("monthlytotalmessages", "bigint", "Messages the recipient got that month.")


def _view(
    name: str,
    description: str,
    reads: tuple[str, ...],
    columns: tuple[ReportingColumn, ...],
    *parameters: str,
) -> ViewSpec:
    return ViewSpec(name, description, reads, columns, parameters)


_NUDGE_GAP = (
    " Rows exist only when reporting.sms_nudge_client_id names the nudge client (NHS "
    "Notify's default names none)."
)
VIEWS: tuple[ViewSpec, ...] = (
    _view(
        "request_item_status_smsnudge_staging",
        "NHS Notify view: the SMS nudge client's request items, with the original message "
        "each nudges about unpacked from its billingref ('client|campaign|billingref') and "
        "requestitemrefid ('requestitemid_requestitemplanid'). Every request_item_status "
        "column except the internal _rank." + _NUDGE_GAP,
        (RIS,),
        _NUDGE_ITEM,
        SMS_NUDGE_CLIENT_ID,
    ),
    _view(
        "request_item_plan_status_smsnudge",
        "NHS Notify view: the SMS nudge client's request item plans, with their item's "
        "originating columns and the original item's sending group. Every "
        "request_item_plan_status column except the internal _rank." + _NUDGE_GAP,
        (RIPS, RIS, "request_item_status_smsnudge_staging"),
        _NUDGE_PLAN,
        SMS_NUDGE_CLIENT_ID,
    ),
    _view(
        "request_item_status_smsnudge",
        "NHS Notify view: request_item_status_smsnudge_staging with the original item's "
        "sending group, one row per plan of the nudge item." + _NUDGE_GAP,
        ("request_item_status_smsnudge_staging", "request_item_plan_status_smsnudge"),
        (*_NUDGE_ITEM, _ORIGINATING_GROUP),
    ),
    _view(
        "request_item_plan_read_status_smsnudge",
        "NHS Notify view: each SMS nudge plan beside the NHS App plan it followed up, and "
        "how long after the nudge that app message was read (completed)." + _NUDGE_GAP,
        ("request_item_plan_status_smsnudge", RIPS),
        (
            _col("createddate", "date", "UTC day the nudge plan was created."),
            *_staging(RIPS, "clientid", "requestitemplanid"),
            *_ORIGINATING[:3],
            _ORIGINATING_GROUP,
            _ORIGINATING[4],
            _col("originalstatus", "string", "Status of the original NHS App plan; null if none."),
            _col(
                "hrstoread",
                "double",
                "Hours from the nudge's creation to the app plan's completion, both "
                "DELIVERED (whole seconds, rounded half up to 0.1 h as NHS Notify's decimal "
                "arithmetic does); else null.",
            ),
        ),
    ),
    _view(
        "billing_transactions",
        "NHS Notify view: billable messages per UTC completion day and billing dimensions: "
        "text messages handed to the supplier (sent, then DELIVERED or FAILED) and letters "
        "DELIVERED. SMS nudges bill to the client, campaign and billing reference of the "
        "message they followed up.",
        (RIPS, RIS, "request_item_plan_status_smsnudge"),
        _BILLING,
        SMS_NUDGE_CLIENT_ID,
    ),
    _view(
        "completed_comms",
        "NHS Notify view: every plan that ended FAILED, DELIVERED or SKIPPED with its "
        "request item, and every FAILED item without a plan, for items and plans created in "
        "the 90 days (from UTC midnight) before the cycle's as-of date.",
        (RIS, RIPS),
        _COMPLETED_COMMS,
        AS_OF_DATE,
    ),
    _view(
        "delivered_messages",
        "NHS Notify view: one row per channel each DELIVERED request item was delivered on "
        "(its completedcommunicationtypes), with UTC creation day and month.",
        (RIS,),
        _DELIVERED,
    ),
    _view(
        "daily_recipient_count",
        "NHS Notify view: distinct recipients delivered to per UTC day, client and channel.",
        ("delivered_messages",),
        (_UTC_DAY, *_staging(RIS, "clientid"), _DELIVERED[4], _RECIPIENTS),
    ),
    _view(
        "daily_recipient_distribution",
        "NHS Notify view: per UTC day and channel, how many recipients got how many messages.",
        ("delivered_messages",),
        (
            _UTC_DAY,
            _DELIVERED[4],
            _col("messagecount", "bigint", "Messages a recipient got that day on the channel."),
            _col("recipientcount", "bigint", "Recipients who got that many."),
        ),
    ),
    _view(
        "dates",
        "NHS Notify view: a calendar, one row per day from 2023-01-01 to 31 December of the "
        "cycle's as-of year.",
        (),
        (
            _col("datevalue", "date", "The day."),
            _col("year", "bigint", "Its year."),
            _col("month", "bigint", "Its month (1-12)."),
            _col("day", "bigint", "Its day of the month."),
        ),
        AS_OF_DATE,
    ),
    _view(
        "monthly_app_recipients_distribution",
        "NHS Notify view: per UTC month, how many recipients got how many NHS App messages.",
        ("delivered_messages",),
        (
            _UTC_MONTH,
            _col("appmessagecount", "bigint", "NHS App messages a recipient got that month."),
            _col("recipientcount", "bigint", "Recipients who got that many."),
        ),
    ),
    _view(
        "monthly_app_recipients_multiple_clients",
        "NHS Notify view: per UTC month, recipients who got NHS App messages from more than "
        "one client, by how many clients.",
        ("delivered_messages",),
        (
            _UTC_MONTH,
            _col("clientcount", "bigint", "Clients that sent the recipient NHS App messages."),
            _col("recipientcount", "bigint", "Recipients who heard from that many clients."),
        ),
    ),
    _view(
        "monthly_messages_per_recipient",
        "NHS Notify view: per UTC month and channel, messages delivered, the month's "
        "distinct recipients over all channels, and messages per recipient.",
        ("delivered_messages",),
        (
            _UTC_MONTH,
            _DELIVERED[4],
            _col("totalmonthlyrecipients", "bigint", "Distinct recipients that month."),
            _col("messagedeliveredcount", "bigint", "Messages delivered on the channel."),
            _col(
                "averagemessagesperecipient",
                "double",
                "messagedeliveredcount / totalmonthlyrecipients, rounded half up to one "
                "decimal place as NHS Notify's decimal arithmetic does; null for no recipient.",
            ),
        ),
    ),
    _view(
        "monthly_recipient_with_more_than_five_messages",
        "NHS Notify view: recipients delivered five or more messages (all clients) in a UTC "
        "month, per client, with that client's deliveries per channel. The threshold is "
        "NHS Notify's (five or more), despite the name.",
        ("delivered_messages",),
        (
            _UTC_MONTH,
            _MONTHLY_COUNT,
            *_staging(RIS, "nhsnumberhash", "clientid"),
            *(
                _col(f"{short}delivered", "bigint", f"Messages from the client on {channel}.")
                for short, channel in (
                    ("app", "NHSAPP"),
                    ("email", "EMAIL"),
                    ("sms", "SMS"),
                    ("letter", "LETTER"),
                )
            ),
        ),
    ),
    _view(
        "monthly_recipients_distribution",
        "NHS Notify view: per UTC month, how many recipients got how many messages.",
        ("delivered_messages",),
        (_UTC_MONTH, _MONTHLY_COUNT, _col("recipientcount", "bigint", "Recipients with that.")),
    ),
    _view(
        "monthly_recipients_distribution_by_integrator",
        "NHS Notify view: per UTC month and client, how many recipients got how many "
        "messages from that client.",
        ("delivered_messages",),
        (
            _UTC_MONTH,
            *_staging(RIS, "clientid"),
            _col("messagedeliveredcount", "bigint", "Messages a recipient got from the client."),
            _RECIPIENTS,
        ),
    ),
    _view(
        "raw_latency_3m",
        "NHS Notify view: send latencies of the three months before the as-of date: for a "
        "first channel from request receipt to send, for a fallback from the earlier "
        "channels' completion to send; only those starting on a (UTC) weekday between "
        "08:00 and 17:59 Europe/London, two minutes either side.",
        (RIS, RIPS),
        _RAW_LATENCY,
        AS_OF_DATE,
    ),
    _view(
        "latency_percentiles",
        "NHS Notify view: 25 percentiles (0.1 to 99.9) of send latency per client, campaign "
        "and channel over the sends of the two months before the as-of date. Exact observed "
        "values (quantile_disc) where NHS Notify's Trino gives approximations.",
        ("raw_latency_3m",),
        (
            *_RAW_LATENCY[:2],
            _RAW_LATENCY[3],
            _col("percentile", "double", "The percentile, 0.1 to 99.9."),
            _col("latency", "double", "Latency at that percentile, in seconds."),
        ),
        AS_OF_DATE,
    ),
    _view(
        "letters_invoice_units_monthly",
        "NHS Notify view: delivered letters per client, campaign, supplier and the UTC "
        "calendar month they are invoiced in (send day plus the supplier's turnaround).",
        (RIPS,),
        (
            *_LETTER_DIMENSIONS,
            _col("invoiceyear", "bigint", "Calendar year of the invoice day."),
            _col("invoicemonth", "bigint", "Calendar month (1-12) of the invoice day."),
            _LETTER_UNITS,
        ),
    ),
    _view(
        "letters_invoice_units_weekly",
        "NHS Notify view: delivered letters per client, campaign, supplier and the ISO week "
        "(UTC) they are invoiced in (send day plus the supplier's turnaround).",
        (RIPS,),
        (
            *_LETTER_DIMENSIONS,
            _col("invoiceyear", "bigint", "ISO week-numbering year of the invoice day."),
            _col("invoiceweek", "bigint", "ISO week (1-53) of the invoice day."),
            _LETTER_UNITS,
        ),
    ),
    _view(
        "request_item_plan_completed_summary_all",
        "NHS Notify view: the completed-plan summaries of every client: per-batch rows for "
        "clients with batch rows, per-day rows for the others.",
        (PLAN_SUMMARY, PLAN_SUMMARY_BATCH),
        _all_rows(PLAN_SUMMARY_BATCH),
    ),
    _view(
        "request_item_status_summary_all",
        "NHS Notify view: the item summaries of every client: per-batch rows for clients "
        "with batch rows, per-day rows for the others.",
        (ITEM_SUMMARY, ITEM_SUMMARY_BATCH),
        _all_rows(ITEM_SUMMARY_BATCH),
    ),
    _view(
        "request_item_status_summary_all_email_filter",
        "NHS Notify view: request_item_status_summary_all without, for the clients in "
        "reporting.email_filter_client_ids, the sending groups that only ever sent email.",
        ("request_item_status_summary_all", "request_item_plan_completed_summary_all"),
        _all_rows(ITEM_SUMMARY_BATCH),
        EMAIL_FILTER_CLIENT_IDS,
    ),
)
# NHS Notify's analyst queries (scripts/sql/reports/, beyond the canned reports), run
# like the views each cycle and published as tables under reporting/queries/<name>.
QUERIES: tuple[ViewSpec, ...] = (
    ViewSpec(
        "pds_cleared_failures",
        "NHS Notify query: deliveries on EMAIL or SMS whose recipient's previous request "
        "item on that channel FAILED with a TEMPORARY or PERMANENT reason, which a PDS "
        "change of contact details may have cleared. Recipients are nhsnumberhash values; "
        "rows without one are left out.",
        (RIS, RIPS),
        (
            *_staging(RIPS, "requestitemid"),
            _col("completedtime", "timestamp", "When the clearing delivery completed (UTC)."),
            *_staging(RIPS, "communicationtype", "recipientcontactid"),
        ),
    ),
)
VIEWS_BY_NAME: Mapping[str, ViewSpec] = {v.name: v for v in (*VIEWS, *QUERIES)}
VIEW_COLUMNS: Mapping[str, tuple[ReportingColumn, ...]] = {v.name: v.columns for v in VIEWS}
QUERY_COLUMNS: Mapping[str, tuple[ReportingColumn, ...]] = {q.name: q.columns for q in QUERIES}


def _check_order() -> None:
    seen: set[str] = set()
    for view in VIEWS:
        unknown = [r for r in view.reads if r not in REPORTING_COLUMNS and r not in seen]
        if unknown:
            raise ValueError(f"view {view.name} reads {unknown} before they are computed")
        seen.add(view.name)


_check_order()
