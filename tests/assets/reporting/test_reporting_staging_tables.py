"""Pass-1 projections and pass-2 aggregations on real Delta tables.

The main property: the staging tables depend only on the set of records delivered,
not on their order, how they were split into files, re-deliveries, how runs cut the
stream, or records leaving the window or the source afterwards.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from assets.reporting.staging import TRANSACTION_HISTORY, staging_key
from flowehr_pipelines.synthetic import write_cdc_landing
from tests.assets.reporting_world import NOW, Lake, item, lines, plan

FEED_START = date(2026, 3, 26)  # spans the switch to BST on 29 March
FEED_DAYS = 5
AS_OF = datetime(2026, 3, 31, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> list[list[str]]:
    """Synthetic CDC lines, one list per delivery day (duplicates and junk included)."""
    root = tmp_path_factory.mktemp("feed")
    stats = write_cdc_landing(
        root,
        days=FEED_DAYS,
        events_per_day=300,
        start_date=FEED_START,
        seed=5,
        clients=3,
        lines_per_file=250,
    )
    by_day: dict[str, list[str]] = {}
    for path in stats.files:
        day = "/".join(part.split("=")[1] for part in path.parent.parts[-3:])
        by_day.setdefault(day, []).extend(path.read_text().splitlines())
    return [by_day[day] for day in sorted(by_day)]


@pytest.fixture(scope="module")
def baseline(feed: list[list[str]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    lake = Lake.at(tmp_path_factory.mktemp("baseline"))
    lake.land("everything", [line for day in feed for line in day])
    lake.cycle(AS_OF)
    snapshot = lake.snapshot()
    assert set(snapshot) == {
        "request_item_status",
        "request_item_plan_status",
        "client_latest_name",
        "request_item_status_summary",
        "request_item_status_summary_batch",
        "request_item_plan_completed_summary",
        "request_item_plan_completed_summary_batch",
    }
    assert lake.staging("request_item_status").num_rows > 50
    return snapshot


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_staging_tables_independent_of_order_file_split_and_redelivery(
    feed: list[list[str]], baseline: dict[str, str], tmp_path: Path, seed: int
):
    rng = random.Random(seed)
    records = [line for day in feed for line in day]
    rng.shuffle(records)
    cuts = sorted(rng.sample(range(1, len(records)), rng.randint(2, 6)))
    chunks = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    lake = Lake.at(tmp_path / "lake")
    for number, chunk in enumerate(chunks):
        lake.land(f"part-{number}", chunk, day=f"2026/04/0{1 + number % 3}")
    lake.land("redelivered", rng.sample(records, len(records) // 20), day="2026/04/05")
    lake.land("part-0-again", chunks[0], day="2026/04/05")  # byte-identical re-delivery
    lake.cycle(AS_OF)
    assert lake.snapshot() == baseline


def test_staging_tables_same_when_built_run_by_run_as_files_arrive(
    feed: list[list[str]], baseline: dict[str, str], tmp_path: Path
):
    """Daily runs with the 7-day window agree with one run over everything."""
    lake = Lake.at(tmp_path / "lake")
    for number, day_lines in enumerate(feed):
        day = FEED_START + timedelta(days=number)
        lake.land(f"day-{number}", day_lines, day=day.strftime("%Y/%m/%d"))
        end_of_day = datetime.combine(day, datetime.max.time(), UTC)
        lake.cycle(end_of_day, window_days=7)
        lake.cycle(end_of_day, window_days=7)  # a re-run changes nothing
    assert lake.snapshot() == baseline


def test_records_leaving_the_window_or_the_source_never_change_staging_rows(
    feed: list[list[str]], baseline: dict[str, str], tmp_path: Path
):
    lake = Lake.at(tmp_path / "lake")
    lake.land("everything", [line for day in feed for line in day])
    lake.cycle(AS_OF)
    # The window moves past the first days: their records are no longer read.
    lake.cycle(AS_OF + timedelta(days=4), window_days=2)
    assert lake.snapshot() == baseline
    # The source expires its oldest records.
    lake.delta.delete(TRANSACTION_HISTORY.path, "change_date < '2026-03-29'")
    lake.cycle(AS_OF)
    lake.cycle(AS_OF + timedelta(days=60))  # nothing left in any window
    assert lake.snapshot() == baseline


T = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
OLD_FORMAT = item("i1", T, "SENDING", patientodscode="Y12345")
NEW_FORMAT = {k: v for k, v in item("i1", T + timedelta(hours=1), "DELIVERED").items()}
del NEW_FORMAT["patientodscode"]  # a record from a feed version without the field
NEW_FORMAT["completeddate"] = (T + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize("order", ["old first", "new first", "same run"])
def test_projection_coalesces_dimensions_a_record_lacks(tmp_path: Path, order: str):
    lake = Lake.at(tmp_path / "lake")
    if order == "same run":
        lake.land("both", lines([NEW_FORMAT, OLD_FORMAT]))
        lake.cycle()
    else:
        first, second = (
            (OLD_FORMAT, NEW_FORMAT) if order == "old first" else (NEW_FORMAT, OLD_FORMAT)
        )
        lake.land("first", lines([first]))
        lake.cycle()
        lake.land("second", lines([second]))
        lake.cycle()
    [row] = lake.rows("request_item_status")
    assert row["status"] == "DELIVERED"
    assert row["patientodscode"] == "Y12345"
    assert row["nhsnumberhash"] == lake.pseudonymiser.hash_value("9434765919")


def test_projection_keeps_the_newer_row_when_an_older_record_arrives_later(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    lake.land("new", lines([item("i1", T + timedelta(minutes=5), "FAILED")]))
    lake.cycle()
    lake.land("late", lines([item("i1", T, "SENDING"), item("i1", T, "ENRICHED")]))
    metrics = lake.project()
    assert metrics["request_item_status"]["rows_updated"] == 0
    assert [r["status"] for r in lake.rows("request_item_status")] == ["FAILED"]


def test_projection_rerun_rewrites_nothing(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    lake.land("a", lines([item(f"i{n}", T, "SENDING") for n in range(5)]))
    lake.cycle()
    version = lake.delta.version(staging_key("request_item_status").path)
    again = lake.project()
    assert again["request_item_status"]["rows_updated"] == 0
    assert again["request_item_status"]["rows_inserted"] == 0
    assert lake.delta.version(staging_key("request_item_status").path) == version  # no commit


def summary_rows(lake: Lake) -> list[dict]:
    return lake.rows("request_item_status_summary")


def test_summary_groups_null_dimensions_together_across_runs(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    records = [item(f"i{n}", T, "SENDING", campaign=None) for n in range(3)]
    records.append(item("i9", T, "DELIVERED", campaign="c9", completed=T))
    lake.land("a", lines(records))
    lake.cycle()
    lake.cycle()
    lake.aggregate()
    rows = summary_rows(lake)
    assert len(rows) == 2
    null_group = next(r for r in rows if r["campaignid"] is None)
    assert null_group["requestedcount"] == 3
    assert null_group["outstandingcount"] == 3


def test_summary_totals_never_fall_while_outstanding_may(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    lake.land("a", lines([item(f"i{n}", T, "SENDING") for n in range(3)]))
    lake.cycle()
    [row] = summary_rows(lake)
    assert (row["requestedcount"], row["outstandingcount"]) == (3, 3)
    # Items complete; then the projection loses two rows (e.g. rebuilt from a shorter
    # history): the totals stay, the outstanding count follows the projection.
    done = T + timedelta(hours=2)
    lake.land("b", lines([item("i0", done, "DELIVERED", created=T, completed=done)]))
    lake.cycle()
    lake.delta.delete(staging_key("request_item_status").path, "requestitemid IN ('i1', 'i2')")
    lake.aggregate()
    [row] = summary_rows(lake)
    assert row["requestedcount"] == 3
    assert row["deliveredcount"] == 1
    assert row["outstandingcount"] == 0


def test_summary_groups_that_left_the_window_keep_their_counts(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    lake.land("a", lines([item("i1", T, "SENDING")]))
    lake.cycle()
    before = summary_rows(lake)
    later = T + timedelta(days=45)
    lake.land("b", lines([item("i1", later, "FAILED", created=T, completed=later)]))
    lake.cycle(as_of=later)  # the item's created day is outside the 31-day window now
    assert summary_rows(lake) == before


def test_plan_completed_summary_counts_delivered_and_failed_plans(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    done = T + timedelta(minutes=3)
    lake.land(
        "a",
        lines(
            [
                plan("p1", T, "PENDING", item_id="i1"),
                plan("p1", done, "DELIVERED", item_id="i1", created=T, completed=done),
                plan("p2", done, "FAILED", item_id="i2", created=T, completed=done,
                     failedreason="No mobile number on record"),
                plan("p3", done, "SKIPPED", item_id="i2", created=T, completed=done,
                     channel="LETTER", order=2),
                plan("p4", T, "SENDING", item_id="i3"),
            ]
        ),
    )  # fmt: skip
    lake.cycle()
    lake.cycle()
    rows = lake.rows("request_item_plan_completed_summary")
    assert sorted((r["status"], r["requestitemcount"]) for r in rows) == [
        ("DELIVERED", 1),
        ("FAILED", 1),
    ]
    plans = lake.staging("request_item_plan_status")
    assert plans.num_rows == 4
    assert pc.sum(pc.equal(plans["status"], "SKIPPED")).as_py() == 1


def test_first_load_reads_the_initial_window_then_the_moving_one(tmp_path: Path):

    lake = Lake.at(tmp_path / "lake")
    # Windows run over landing days: one file landed 30 days ago, one this week.
    old = T - timedelta(days=30)
    lake.land("a", lines([item("old", old, "SENDING")]), day=old.strftime("%Y/%m/%d"))
    lake.land("b", lines([item("new", T, "SENDING")]), day=T.strftime("%Y/%m/%d"))
    lake.ingest()

    def run(initial: int) -> dict:
        return lake.project(initial_window_days=initial)["request_item_status"]

    first = run(90)
    assert first["keys_in_window"] == 2
    second = run(90)  # the table exists now: the 7-day window applies
    assert second["keys_in_window"] == 1
    assert lake.staging("request_item_status").num_rows == 2


def test_steady_cycle_reads_only_records_landed_since_the_last_one(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    lake.land("a", lines([item(f"i{n}", T, "SENDING") for n in range(4)]))
    lake.cycle()
    lake.cycle()  # the first cycle after the migration load reads the whole window
    lake.land("b", lines([item("i0", T + timedelta(minutes=5), "DELIVERED")]), day="2026/04/06")
    lake.ingest()
    metrics = lake.project()["request_item_status"]
    assert metrics["incremental_after_source_version"] >= 0
    assert metrics["source_records_in_window"] == 1  # only the new file was read
    assert metrics["rows_updated"] == 1
    statuses = {r["requestitemid"]: r["status"] for r in lake.rows("request_item_status")}
    assert statuses == {"i0": "DELIVERED", "i1": "SENDING", "i2": "SENDING", "i3": "SENDING"}


def test_steady_cycle_with_nothing_new_reads_nothing_and_commits_nothing(tmp_path: Path):
    lake = Lake.at(tmp_path / "lake")
    lake.land("a", lines([item(f"i{n}", T, "SENDING") for n in range(3)]))
    lake.cycle()
    lake.cycle()
    versions = {k: lake.delta.version(k.path) for k in map(staging_key, lake_tables())}
    lake.cycle()
    metrics = lake.project()["request_item_status"]
    assert metrics["source_records_in_window"] == 0
    assert {k: lake.delta.version(k.path) for k in versions} == versions


def lake_tables() -> list[str]:
    return ["request_item_status", "request_item_plan_status", "request_item_status_summary"]


def test_window_runs_over_landing_day_so_a_record_that_lands_late_is_kept(tmp_path: Path):
    lake = Lake.at(tmp_path)
    changed = NOW - timedelta(days=20)
    # Changed 20 days ago, landed today: inside the 7-day window, as NHS Notify keeps it.
    late = item("late", changed, "DELIVERED", completed=changed)
    lake.land("late", lines([late]), day=NOW.strftime("%Y/%m/%d"))
    # Landed 10 days ago: outside the window, whatever its change time says.
    early = item("early", NOW - timedelta(days=1), "SENDING")
    lake.land("early", lines([early]), day=(NOW - timedelta(days=10)).strftime("%Y/%m/%d"))
    lake.ingest()
    lake.project(window_days=7)
    assert [r["requestitemid"] for r in lake.rows("request_item_status")] == ["late"]


def test_nhs_notify_hash_option_gives_its_pseudonyms_and_hmac_stays_the_default(tmp_path: Path):
    from assets.reporting.settings import ReportingSettings
    from assets.reporting.staging import identifier_hash
    from tests.conftest import TEST_KEY
    from transforms.identifiers import hmac_sha256_hex, nhs_notify_hash

    lake = Lake.at(tmp_path / "lake")
    lake.land("a", lines([item("i1", NOW, "SENDING", nhsnumber="9434765919")]))
    lake.ingest()
    assert identifier_hash(ReportingSettings(), lake.pseudonymiser) is None  # the default
    chosen = identifier_hash(ReportingSettings(nhsnumber_hash="nhs_notify"), lake.pseudonymiser)
    lake.project(hash_identifier=chosen)
    [row] = lake.rows("request_item_status")
    assert row["nhsnumberhash"] == nhs_notify_hash(TEST_KEY.encode(), "9434765919")
    assert row["nhsnumberhash"] != hmac_sha256_hex(TEST_KEY.encode(), "9434765919")
