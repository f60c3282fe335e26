"""The published reporting tables by key, written out once for the tests that list them.

NHS Notify's seven staging tables, its 23 views and its analyst queries
(docs/NHS_NOTIFY.md), as literal keys: a test that expects them compares with these
names, not with the code's own list.
"""

REPORTING_STAGING_KEYS = frozenset(
    {
        "reporting/client_latest_name",
        "reporting/request_item_plan_completed_summary",
        "reporting/request_item_plan_completed_summary_batch",
        "reporting/request_item_plan_status",
        "reporting/request_item_status",
        "reporting/request_item_status_summary",
        "reporting/request_item_status_summary_batch",
    }
)
REPORTING_VIEW_KEYS = frozenset(
    {
        "reporting/views/billing_transactions",
        "reporting/views/completed_comms",
        "reporting/views/daily_recipient_count",
        "reporting/views/daily_recipient_distribution",
        "reporting/views/dates",
        "reporting/views/delivered_messages",
        "reporting/views/latency_percentiles",
        "reporting/views/letters_invoice_units_monthly",
        "reporting/views/letters_invoice_units_weekly",
        "reporting/views/monthly_app_recipients_distribution",
        "reporting/views/monthly_app_recipients_multiple_clients",
        "reporting/views/monthly_messages_per_recipient",
        "reporting/views/monthly_recipient_with_more_than_five_messages",
        "reporting/views/monthly_recipients_distribution",
        "reporting/views/monthly_recipients_distribution_by_integrator",
        "reporting/views/raw_latency_3m",
        "reporting/views/request_item_plan_completed_summary_all",
        "reporting/views/request_item_plan_read_status_smsnudge",
        "reporting/views/request_item_plan_status_smsnudge",
        "reporting/views/request_item_status_smsnudge",
        "reporting/views/request_item_status_smsnudge_staging",
        "reporting/views/request_item_status_summary_all",
        "reporting/views/request_item_status_summary_all_email_filter",
    }
)
# NHS Notify's analyst queries, published as tables beside the views.
REPORTING_QUERY_KEYS = frozenset({"reporting/queries/pds_cleared_failures"})
