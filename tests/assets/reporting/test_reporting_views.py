"""NHS Notify's views materialised on a real local lake: every table, its columns, its rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from assets.governance.settings import GovernanceSettings
from assets.metadata import column_type_name
from assets.reporting import views
from assets.reporting.settings import ReportingSettings
from tests.assets.reporting_world import NOW, Lake, item, lines, plan
from transforms.reporting.views import VIEW_COLUMNS, VIEWS

THURSDAY = datetime(2026, 4, 2, 9, 0, tzinfo=NOW.tzinfo)  # 10:00 in London
SETTINGS = ReportingSettings(sms_nudge_client_id="nudge", email_filter_client_ids=["client-a"])

# Rows each view holds on the lake below (see ``records``).
EXPECTED_ROWS = {
    "request_item_status_smsnudge_staging": 1,
    "request_item_plan_status_smsnudge": 1,
    "request_item_status_smsnudge": 1,
    "request_item_plan_read_status_smsnudge": 1,
    "billing_transactions": 4,  # client-a's letter and three kinds of text (one a nudge)
    "completed_comms": 8,
    "delivered_messages": 6,
    "daily_recipient_count": 6,
    "daily_recipient_distribution": 4,
    "dates": 1461,
    "monthly_app_recipients_distribution": 1,
    "monthly_app_recipients_multiple_clients": 1,
    "monthly_messages_per_recipient": 4,
    "monthly_recipient_with_more_than_five_messages": 3,
    "monthly_recipients_distribution": 1,
    "monthly_recipients_distribution_by_integrator": 3,
    "raw_latency_3m": 7,
    "latency_percentiles": 25 * 6,  # six client, campaign and channel groups
    "letters_invoice_units_monthly": 1,
    "letters_invoice_units_weekly": 1,
    "request_item_plan_completed_summary_all": 6,
    "request_item_status_summary_all": 5,
    "request_item_status_summary_all_email_filter": 4,
}


@dataclass(frozen=True)
class Domain:
    reporting: ReportingSettings
    governance: GovernanceSettings = field(default_factory=GovernanceSettings)


def records() -> list[dict[str, Any]]:
    """One recipient's week: client-a sends on every channel (the app message followed
    by an SMS fallback and an SMS nudge), client-b an app message and a failed item."""
    t = THURSDAY
    hour = timedelta(hours=1)

    def delivered_item(item_id: str, channel: str, **extra: Any) -> dict[str, Any]:
        return item(
            item_id,
            t + hour,
            "DELIVERED",
            created=t,
            completed=t + hour,
            completedcommunicationtypes=[channel],
            **extra,
        )

    def sent_plan(plan_id: str, item_id: str, channel: str, **extra: Any) -> dict[str, Any]:
        return plan(
            plan_id,
            t + hour,
            "DELIVERED",
            item_id=item_id,
            channel=channel,
            created=t,
            completed=t + hour,
            datesent=(t + timedelta(minutes=5)).isoformat(),
            **extra,
        )

    return [
        delivered_item("item-1", "NHSAPP", billingref="bill-a"),
        sent_plan("plan-1", "item-1", "NHSAPP", senderodscode="ODS1"),
        plan(
            "plan-1b",
            t + 2 * hour,
            "DELIVERED",
            item_id="item-1",
            channel="SMS",
            order=2,
            channeltype="primary",
            created=t,
            completed=t + 2 * hour,
            datesent=(t + hour + timedelta(minutes=10)).isoformat(),
        ),
        delivered_item("item-2", "SMS", billingref="bill-a"),
        sent_plan("plan-2", "item-2", "SMS", messagelength=1, messagelengthunits="FRAGMENTS"),
        delivered_item("item-3", "LETTER", billingref="bill-a"),
        sent_plan("plan-3", "item-3", "LETTER", supplier="MBA"),
        delivered_item("item-5", "EMAIL", sendinggroupid="group-email"),
        sent_plan("plan-5", "item-5", "EMAIL", sendinggroupid="group-email"),
        delivered_item("item-6", "NHSAPP", client="client-b", request="request-2"),
        sent_plan("plan-6", "item-6", "NHSAPP", client="client-b", request="request-2"),
        item("item-4", t + hour, "FAILED", client="client-b", request="request-3", created=t),
        delivered_item(
            "item-n",
            "SMS",
            client="nudge",
            request="request-n",
            billingref="client-a|campaign-1|bill-a",
            requestitemrefid="item-1_plan-1",
        ),
        sent_plan(
            "plan-n",
            "item-n",
            "SMS",
            client="nudge",
            request="request-n",
            messagelength=1,
            messagelengthunits="FRAGMENTS",
        ),
    ]


def materialise(lake: Lake) -> dg.ExecuteInProcessResult:
    defs = views.build_defs(Domain(SETTINGS)).assets or []
    assets = [a for a in defs if isinstance(a, dg.AssetsDefinition)]
    as_of = {"config": {"as_of": NOW.isoformat()}}
    ops = [a.op.name for a in assets]
    return dg.materialize(
        assets,
        resources={"delta": lake.delta},
        run_config={"ops": {op: as_of for op in ops}},
        instance=dg.DagsterInstance.ephemeral(),
    )


def view_table(lake: Lake, name: str) -> pa.Table:
    return lake.delta.read(views.view_key(name).path)


def type_name(data_type: pa.DataType) -> str:
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"array<{column_type_name(data_type.value_type)}>"
    return column_type_name(data_type)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = Lake.at(Path(tmp_path_factory.mktemp("views")))
    lake.land("week", lines(records()), day="2026/04/02")
    lake.cycle()
    result = materialise(lake)
    assert result.success
    return lake


def test_there_is_one_asset_per_view_and_query_in_pass_three() -> None:
    assets = views.build_defs(Domain(SETTINGS)).assets or []
    specs = [s for a in assets if isinstance(a, dg.AssetsDefinition) for s in a.specs]
    assert {s.key for s in specs} == {*views.VIEW_KEYS, *views.QUERY_KEYS}
    assert len(views.VIEW_KEYS) == 23
    assert [k.to_user_string() for k in views.QUERY_KEYS] == [
        "reporting/queries/pds_cleared_failures"
    ]
    for spec in specs:
        assert spec.group_name == "reporting"
        assert {k: v for k, v in spec.tags.items() if "/" not in k} == {
            "zone": "reporting",
            "pass": "3",
        }
        assert set(spec.kinds) == {"sql", "delta"}
        assert spec.description


@pytest.mark.parametrize("name", [v.name for v in VIEWS])
def test_every_view_table_has_the_documented_columns_and_rows(lake: Lake, name: str) -> None:
    stored = pa.schema(lake.delta.table(views.view_key(name).path).schema().to_arrow())
    assert [(f.name, type_name(f.type)) for f in stored] == [
        (c.name, c.type) for c in VIEW_COLUMNS[name]
    ]
    assert view_table(lake, name).num_rows == EXPECTED_ROWS[name]


def test_billing_bills_the_nudge_to_the_message_it_followed(lake: Lake) -> None:
    rows = view_table(lake, "billing_transactions").to_pylist()
    assert {r["clientid"] for r in rows} == {"client-a"}
    assert {(r["campaignid"], r["billingref"]) for r in rows} == {("campaign-1", "bill-a")}
    billed = [
        (r["communicationtype"], r["senderodscode"], r["messagelength"], r["messagecount"])
        for r in rows
    ]
    assert sorted(billed, key=repr) == [
        ("LETTER", None, None, 1),  # plan-3
        ("SMS", "ODS1", 1, 1),  # the nudge plan-n, with its original plan-1's sender
        ("SMS", None, 1, 1),  # plan-2
        ("SMS", None, None, 1),  # plan-1b
    ]
    read = view_table(lake, "request_item_plan_read_status_smsnudge").to_pylist()
    assert [(r["requestitemplanid"], r["originalstatus"], r["hrstoread"]) for r in read] == [
        ("plan-n", "DELIVERED", 1.0)  # created 09:00, the app message read at 10:00
    ]


def test_email_filter_hides_client_as_email_only_group(lake: Lake) -> None:
    everything = view_table(lake, "request_item_status_summary_all").to_pylist()
    filtered = view_table(lake, "request_item_status_summary_all_email_filter").to_pylist()
    assert ("client-a", "group-email") in {(r["clientid"], r["sendinggroupid"]) for r in everything}
    assert ("client-a", "group-email") not in {
        (r["clientid"], r["sendinggroupid"]) for r in filtered
    }


def test_rerunning_rewrites_the_same_rows(lake: Lake) -> None:
    before = {v.name: sorted(map(repr, view_table(lake, v.name).to_pylist())) for v in VIEWS}
    assert materialise(lake).success
    after = {v.name: sorted(map(repr, view_table(lake, v.name).to_pylist())) for v in VIEWS}
    assert after == before


def test_views_over_an_empty_lake_are_empty_tables_with_their_columns(tmp_path: Path) -> None:
    lake = Lake.at(tmp_path)
    result = materialise(lake)
    assert result.success
    for spec in VIEWS:
        stored = view_table(lake, spec.name)
        assert stored.column_names == [c.name for c in spec.columns]
        assert stored.num_rows == (1461 if spec.name == "dates" else 0), spec.name
    counts: dict[str, Any] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        counts[materialization.asset_key.path[-1]] = materialization.metadata[
            "dagster/row_count"
        ].value
    assert counts["dates"] == 1461
    assert counts["billing_transactions"] == 0
