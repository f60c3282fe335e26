"""Our staging tables hold, row for row, what NHS Notify's ingestion SQL would hold.

The demo CDC feed (``write_cdc_landing``, with its late, repeated and malformed lines)
lands one day at a time in a lake. Each night a reporting cycle runs the production
functions: landing ingestion, the three projections and the four summaries. Beside
it, ``NhsNotifyModel`` replays NHS Notify's published MERGE rules over the same bronze
records. After every cycle the seven tables must agree on every NHS Notify column.

The comparison allows exactly the differences docs/NHS_NOTIFY.md documents:

* our extra columns (``createddate``, ``completeddate``, ``timestamp``, ``_rank``);
* ``nhsnumberhash``: compared in full, since the cycle runs with
  ``reporting.nhsnumber_hash: nhs_notify``, which uses their construction;
* local dates: the cycle runs with ``reporting.timezone: UTC``, which gives NHS
  Notify's dates;
* ties on ``timestamp`` and dimensions a newer record omits: the feed contains neither
  (checked below), so no row needs excusing;
* 64-bit counts: values are compared, not types.

Three cases the nightly feed alone would not reach are worked here as well: the batch
tables hold the listed clients only, the projections' week is eight landing days
after a week without runs, and the summaries' month is a calendar month.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.reporting.ingestion import TRANSACTION_HISTORY
from assets.reporting.settings import ReportingSettings
from assets.reporting.staging import identifier_hash, refresh_aggregation, refresh_projection
from flowehr_pipelines.synthetic import write_cdc_landing
from tests.assets.reporting_world import Lake, item, lines
from tests.conftest import TEST_KEY
from tests.reliability.nhs_notify_semantics import (
    NHS_COLUMNS,
    ROW_KEYS,
    NhsNotifyModel,
    query,
    table_differences,
)
from transforms.cdc import TRANSACTION_HISTORY_SCHEMA
from transforms.reporting.staging import AGGREGATIONS, PROJECTIONS

pytestmark = pytest.mark.reliability

FEED_START = date(2026, 3, 26)  # spans the switch to BST on 29 March
# NHS Notify's dates are UTC dates; the reporting settings say so (docs/NHS_NOTIFY.md).
SETTINGS = ReportingSettings(timezone="UTC", nhsnumber_hash="nhs_notify")
TABLES = tuple(NHS_COLUMNS)
BATCH_TABLES = tuple(spec.table for spec in AGGREGATIONS if spec.batch_clients_only)
# The columns docs/NHS_NOTIFY.md says ours carry beside NHS Notify's, and no others.
DOCUMENTED_EXTRAS: dict[str, set[str]] = {
    "request_item_status": {"createddate", "completeddate", "_rank"},
    "request_item_plan_status": {"createddate", "completeddate", "_rank"},
    "client_latest_name": {"timestamp", "_rank"},
    **{spec.table: set() for spec in AGGREGATIONS},
}
# NHS Notify's rows after the feed, at least: a comparison of near-empty tables proves little.
MINIMUM_ROWS = {
    "request_item_status": 250,
    "request_item_plan_status": 400,
    "client_latest_name": 3,
    "request_item_status_summary": 10,
    "request_item_status_summary_batch": 5,
    "request_item_plan_completed_summary": 40,
    "request_item_plan_completed_summary_batch": 20,
}
# The CDC field each projection column is read from, where the names differ.
FIELD_OF_COLUMN = {
    "createdtime": "createddate",
    "sendtime": "datesent",
    "sendinggroupcreatedtime": "sendinggroupcreateddate",
}
Feed = dict[date, dict[str, list[str]]]  # landing day -> file name -> lines


class Reporting:
    """A lake cycled by the production functions, and NHS Notify's model beside it."""

    def __init__(self, root: Path, batch_client_ids: tuple[str, ...]) -> None:
        self.lake = Lake.at(root)
        self.batch_client_ids = batch_client_ids
        self.nhs = NhsNotifyModel(key=TEST_KEY, batch_client_ids=batch_client_ids)

    def land(self, day: date, files: dict[str, list[str]]) -> None:
        for name, text_lines in files.items():
            self.lake.land(name, text_lines, day=day.strftime("%Y/%m/%d"))

    def cycle(self, as_of: datetime) -> None:
        """One night's run on both sides, with the production settings' windows."""
        lake = self.lake
        lake.ingest(as_of)
        for projection in PROJECTIONS:
            refresh_projection(
                projection,
                delta=lake.delta,
                pseudonymise=lake.pseudonymiser.hash_value,
                as_of=as_of,
                window_days=SETTINGS.projection_window_days,
                tz=SETTINGS.timezone,
                initial_window_days=SETTINGS.initial_window_days,
                hash_identifier=identifier_hash(SETTINGS, lake.pseudonymiser),
            )
        for aggregation in AGGREGATIONS:
            refresh_aggregation(
                aggregation,
                delta=lake.delta,
                as_of=as_of,
                window_days=SETTINGS.aggregation_window_days,
                initial_window_days=SETTINGS.initial_window_days,
                batch_client_ids=self.batch_client_ids,
            )
        self.nhs.cycle(lake.delta.read(TRANSACTION_HISTORY.path), as_of)

    def differences(self, table: str, *, listed_clients_only: bool = False) -> list[str]:
        """How our table differs from theirs; optionally only over the batch clients' rows."""
        ours = self.lake.staging(table)
        if listed_clients_only:
            listed = pa.array(self.batch_client_ids, pa.string())
            ours = ours.filter(pc.is_in(ours["clientid"], value_set=listed))
        return table_differences(ours, self.nhs.tables[table], ROW_KEYS[table], NHS_COLUMNS[table])


def nightly(day: date) -> datetime:
    """The cycle after a landing day: 02:00 UTC the next morning."""
    return datetime(day.year, day.month, day.day, 2, tzinfo=UTC) + timedelta(days=1)


def demo_feed(root: Path) -> Feed:
    """The demo feed's files as ``flowehr demo-data`` writes them, by landing day:
    some 330 request items and 550 plans of three clients over six days."""
    stats = write_cdc_landing(
        root,
        days=6,
        events_per_day=450,
        start_date=FEED_START,
        seed=11,
        clients=3,
        lines_per_file=300,
    )
    days: Feed = {}
    for path in stats.files:
        year, month, day = (int(part.split("=")[1]) for part in path.parent.parts[-3:])
        days.setdefault(date(year, month, day), {})[path.stem] = path.read_text().splitlines()
    return days


def batch_clients(feed: Feed) -> tuple[str, ...]:
    """Two of the feed's three clients, so that the batch tables' client filter has work."""
    clients = set()
    for files in feed.values():
        for text_lines in files.values():
            for line in text_lines:
                try:
                    clients.add(json.loads(line)["clientid"])
                except (ValueError, TypeError, KeyError):
                    continue  # one of the feed's malformed lines
    return tuple(sorted(clients)[:2])


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    return demo_feed(tmp_path_factory.mktemp("feed"))


@pytest.fixture(scope="module")
def nightly_run(
    feed: Feed, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Reporting, dict[tuple[str, bool], list[str]]]:
    """The feed landed a day at a time with a cycle each night, and the first differences
    each comparison (table, listed clients only) showed, headed by the cycle's time."""
    reporting = Reporting(tmp_path_factory.mktemp("nightly"), batch_clients(feed))
    comparisons = [(t, False) for t in TABLES] + [(t, True) for t in BATCH_TABLES]
    found: dict[tuple[str, bool], list[str]] = {c: [] for c in comparisons}
    for day in sorted(feed):
        reporting.land(day, feed[day])
        as_of = nightly(day)
        reporting.cycle(as_of)
        for table, listed_only in comparisons:
            if found[table, listed_only]:
                continue
            if differences := reporting.differences(table, listed_clients_only=listed_only):
                found[table, listed_only] = [f"after the cycle at {as_of.isoformat()}:"]
                found[table, listed_only] += differences
    return reporting, found


def omitted_dimensions(bronze: pa.Table) -> int:
    """Records that lack a dimension an earlier record of the same entity carried."""
    checks = []
    for spec, prefix in zip(PROJECTIONS[:2], ("REQUEST_ITEM#", "REQUEST_ITEM_PLAN#"), strict=True):
        fields = [FIELD_OF_COLUMN.get(name, name) for name in spec.dimensions]
        lost = " OR ".join(
            f"({n} IS NULL AND bool_or({n} IS NOT NULL) OVER earlier)" for n in fields
        )
        checks.append(
            f"SELECT count(*) FILTER (WHERE lost) AS n FROM (SELECT {lost} AS lost FROM history "
            f"WHERE starts_with(sk, '{prefix}') WINDOW earlier AS (PARTITION BY {spec.key} "
            'ORDER BY "timestamp" ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))'
        )
    counted = query(" UNION ALL ".join(checks), {"history": bronze}, {})
    return int(sum(counted["n"].to_pylist()))


def test_feed_leaves_nothing_to_chance_or_to_documented_differences(
    nightly_run: tuple[Reporting, dict[tuple[str, bool], list[str]]],
) -> None:
    """Every row is comparable: no winner is a tie NHS Notify's ordering leaves open, and
    no newer record omits a dimension an older one had (ours keeps it, theirs nulls it)."""
    reporting, _ = nightly_run
    assert sum(reporting.nhs.ambiguous.values()) == 0, reporting.nhs.ambiguous
    assert omitted_dimensions(reporting.lake.delta.read(TRANSACTION_HISTORY.path)) == 0


def test_omitted_dimension_check_can_fail() -> None:
    """The check above can fail: a newer record without the billing reference counts."""
    first = item("item-1", datetime(2026, 3, 26, 9, tzinfo=UTC), "ENRICHED", billingref="B-1")
    later = {**first, "timestamp": first["timestamp"] + 1, "billingref": None}
    records = [
        {**r, "createddate": datetime.fromisoformat(r["createddate"])} for r in (first, later)
    ]
    history = pa.Table.from_pylist(records, schema=TRANSACTION_HISTORY_SCHEMA)
    assert omitted_dimensions(history) == 1


@pytest.mark.parametrize("table", TABLES)
def test_staging_table_has_every_nhs_notify_column_and_only_documented_extras(
    nightly_run: tuple[Reporting, dict[tuple[str, bool], list[str]]], table: str
) -> None:
    reporting, _ = nightly_run
    ours = set(reporting.lake.staging(table).column_names)
    theirs = set(NHS_COLUMNS[table])
    assert theirs - ours == set(), "NHS Notify's columns missing from ours"
    assert ours - theirs == DOCUMENTED_EXTRAS[table]


@pytest.mark.parametrize("table", TABLES)
def test_staging_table_equals_nhs_notify_semantics_after_every_nightly_cycle(
    nightly_run: tuple[Reporting, dict[tuple[str, bool], list[str]]], table: str
) -> None:
    reporting, found = nightly_run
    assert found[table, False] == [], "\n".join(found[table, False])
    assert reporting.nhs.tables[table].num_rows >= MINIMUM_ROWS[table]


@pytest.mark.parametrize("table", BATCH_TABLES)
def test_batch_table_rows_of_the_listed_clients_equal_nhs_notify_semantics(
    nightly_run: tuple[Reporting, dict[tuple[str, bool], list[str]]], table: str
) -> None:
    """Apart from the clients they should not hold, the batch tables agree row for row."""
    reporting, found = nightly_run
    assert found[table, True] == [], "\n".join(found[table, True])
    assert reporting.nhs.tables[table].num_rows >= MINIMUM_ROWS[table]


def test_comparison_reports_a_changed_value_a_missing_row_and_a_repeated_key(
    nightly_run: tuple[Reporting, dict[tuple[str, bool], list[str]]],
) -> None:
    """The comparison can fail: one perturbed table shows each kind of difference."""
    reporting, _ = nightly_run
    table = "request_item_plan_status"
    ours, key, columns = reporting.lake.staging(table), ROW_KEYS[table], NHS_COLUMNS[table]
    rows = reporting.nhs.tables[table].to_pylist()
    assert table_differences(ours, pa.Table.from_pylist(rows), key, columns) == []
    first, second, dropped = rows[:3]
    perturbed = [{**first, "supplier": "ELSEWHERE"}, second, dict(second), *rows[3:]]
    report = "\n".join(table_differences(ours, pa.Table.from_pylist(perturbed), key, columns))
    assert f"NHS Notify's holds key ('{second['requestitemplanid']}',) more than once" in report
    assert f"1 row(s) only in ours, e.g.:\n  key ('{dropped['requestitemplanid']}',)" in report
    assert f"supplier: ours {first['supplier']!r}, NHS Notify's 'ELSEWHERE'" in report


def test_cycle_after_a_week_without_runs_reads_the_landing_days_nhs_notify_reads(
    feed: Feed, tmp_path: Path
) -> None:
    """The first landing day's cycle, then none until exactly a week after the second
    landing day, 27 March: NHS Notify's window still holds that day's files."""
    reporting = Reporting(tmp_path / "gap", batch_clients(feed))
    first, *later = sorted(feed)
    reporting.land(first, feed[first])
    reporting.cycle(nightly(first))
    for day in later:
        reporting.land(day, feed[day])
    a_week_after = datetime.combine(later[0] + timedelta(weeks=1), time(2), tzinfo=UTC)
    reporting.cycle(a_week_after)  # CURRENT_DATE - 1 week is the second landing day
    differences = reporting.differences("request_item_status")
    assert differences == [], "\n".join(differences)


def test_summaries_regroup_the_created_days_nhs_notify_regroups(tmp_path: Path) -> None:
    """A worked case: a letter item created on 6 March and delivered on 5 April."""
    created = datetime(2026, 3, 6, 10, tzinfo=UTC)
    delivered = datetime(2026, 4, 5, 9, tzinfo=UTC)
    reporting = Reporting(tmp_path / "month", ("client-a",))
    reporting.land(created.date(), {"created": lines([item("item-1", created, "SENDING")])})
    reporting.cycle(nightly(created.date()))
    letter_delivered = item(
        "item-1",
        delivered,
        "DELIVERED",
        created=created,
        completed=delivered,
        completedcommunicationtypes=["LETTER"],
        failedcommunicationtypes=[],
    )
    reporting.land(delivered.date(), {"delivered": lines([letter_delivered])})
    reporting.cycle(nightly(delivered.date()))
    assert reporting.differences("request_item_status") == []
    differences = reporting.differences("request_item_status_summary")
    assert differences == [], "\n".join(differences)
