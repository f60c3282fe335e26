"""Order independence: however the CDC records arrive, the staging tables and reports agree.

The demo CDC log (with its own repeats and malformed lines) is delivered in several
ways: as generated; shuffled with different seeds and cut into different numbers of
files; with a file delivered twice byte for byte; with records delivered again inside
a second, differently cut file; and spread over two runs in reverse order. Each
delivery goes through the real assets (landing ingestion, projections, aggregations,
report partitions due now) and must give the same ``reporting/*`` tables and
byte-identical report files.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from flowehr_pipelines.definitions import defs
from flowehr_pipelines.run.runner import run_assets
from flowehr_pipelines.synthetic import write_cdc_landing
from flowehr_pipelines.synthetic.cdc_files import partition_dir
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.reliability import lake

pytestmark = pytest.mark.reliability

STAGING = 'key:"bronze/transaction_history" or key:"reporting/*"'
# Reports are written once and never rewritten, so only the last run of a delivery
# writes them (a report written mid-delivery would rightly hold partial data).
SELECTION = f"{STAGING} or group:reports"
STAGING_TABLES = (
    "reporting/request_item_status",
    "reporting/request_item_plan_status",
    "reporting/client_latest_name",
    "reporting/request_item_status_summary",
    "reporting/request_item_status_summary_batch",
    "reporting/request_item_plan_completed_summary",
    "reporting/request_item_plan_completed_summary_batch",
)
# A delivery: the files to land (name -> lines) in each successive run.
Delivery = list[dict[str, list[bytes]]]


@dataclass(frozen=True)
class Outcome:
    tables: dict[str, str]
    reports: dict[str, str]
    rows: dict[str, int]


def split(lines: list[bytes], parts: int, rng: random.Random) -> list[list[bytes]]:
    """Cut lines into ``parts`` non-empty files at seeded random points."""
    cuts = sorted(rng.sample(range(1, len(lines)), parts - 1))
    return [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]


def shuffled(lines: list[bytes], seed: int) -> list[bytes]:
    out = list(lines)
    random.Random(seed).shuffle(out)
    return out


def files(prefix: str, chunks: list[list[bytes]]) -> dict[str, list[bytes]]:
    return {f"{prefix}-{n:03d}.jsonl": chunk for n, chunk in enumerate(chunks)}


def as_generated(original: dict[str, list[bytes]]) -> Delivery:
    return [original]


def shuffled_into(seed: int, parts: int) -> Callable[[dict[str, list[bytes]]], Delivery]:
    def delivery(original: dict[str, list[bytes]]) -> Delivery:
        every = [line for chunk in original.values() for line in chunk]
        return [files(f"s{seed}", split(shuffled(every, seed), parts, random.Random(seed)))]

    return delivery


def same_file_twice(original: dict[str, list[bytes]]) -> Delivery:
    every = shuffled([line for chunk in original.values() for line in chunk], 7)
    chunks = files("twice", split(every, 4, random.Random(7)))
    first = next(iter(chunks))
    return [{**chunks, f"again-{first}": chunks[first]}]


def records_again_in_another_file(original: dict[str, list[bytes]]) -> Delivery:
    every = shuffled([line for chunk in original.values() for line in chunk], 8)
    rng = random.Random(8)
    again = rng.sample(every, len(every) // 3)  # a third re-delivered, cut differently
    return [{**files("first", split(every, 3, rng)), **files("resent", split(again, 2, rng))}]


def over_two_runs_in_reverse(original: dict[str, list[bytes]]) -> Delivery:
    every = shuffled([line for chunk in original.values() for line in chunk], 9)
    chunks = split(every, 6, random.Random(9))
    late, early = chunks[:3], chunks[3:]  # the later records arrive first
    return [files("run1", early), files("run2", late)]


DELIVERIES: dict[str, Callable[[dict[str, list[bytes]]], Delivery]] = {
    "as_generated": as_generated,
    "shuffled_seed_1_into_1_file": shuffled_into(1, 1),
    "shuffled_seed_2_into_5_files": shuffled_into(2, 5),
    "shuffled_seed_3_into_17_files": shuffled_into(3, 17),
    "same_file_twice": same_file_twice,
    "records_again_in_another_file": records_again_in_another_file,
    "over_two_runs_in_reverse": over_two_runs_in_reverse,
}


@pytest.fixture(scope="module")
def original() -> dict[str, list[bytes]]:
    """The demo CDC landing files, read back as lines."""
    with lake.private_directory("cdc") as scratch:
        landing = scratch / "landing"
        start = date.today() - timedelta(days=2)
        write_cdc_landing(landing, days=3, events_per_day=400, start_date=start, seed=13)
        return {
            str(path.relative_to(landing)): path.read_bytes().splitlines()
            for path in sorted(landing.rglob("*.jsonl"))
        }


def deliver(data_dir: Path, delivery: Delivery) -> None:
    """Land each run's files and run the reporting graph after each."""
    landing = partition_dir(data_dir / "lake" / "landing", date.today())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWEHR_CONFIG_DIR", str(REPO_ROOT))
        mp.setenv("FLOWEHR_ENV", "ci")
        mp.setenv("FLOWEHR_DATA_DIR", str(data_dir))
        mp.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
        mp.delenv("FLOWEHR_LAKE_ROOT", raising=False)
        definitions = defs()
        instance = dg.DagsterInstance.ephemeral()
        for n, run_files in enumerate(delivery, start=1):
            for name, chunk in run_files.items():
                # Generated files keep their delivery-day directory; re-cut ones land today.
                path = data_dir / "lake" / "landing" / name if "/" in name else landing / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\n".join(chunk) + b"\n")
            selection = SELECTION if n == len(delivery) else STAGING
            summary = run_assets(definitions, instance, selection=selection)
            assert summary.success, summary.failures


def outcome(data_dir: Path) -> Outcome:
    lake_root = data_dir / "lake"
    return Outcome(
        lake.table_hashes(lake_root, tables=STAGING_TABLES),
        {name: f.sha256 for name, f in lake.report_files(lake_root).items()},
        lake.row_counts(lake_root, STAGING_TABLES),
    )


@pytest.fixture(scope="module")
def outcomes(original: dict[str, list[bytes]]) -> dict[str, Outcome]:
    results = {}
    with lake.private_directory("order") as scratch:
        for name, delivery in DELIVERIES.items():
            data_dir = scratch / name
            data_dir.mkdir()
            deliver(data_dir, delivery(original))
            results[name] = outcome(data_dir)
    return results


def test_the_reference_delivery_fills_every_staging_table_and_writes_reports(
    outcomes: dict[str, Outcome],
) -> None:
    reference = outcomes["as_generated"]
    assert all(reference.rows[t] > 0 for t in STAGING_TABLES), reference.rows
    assert any(name.endswith(".csv") for name in reference.reports)


@pytest.mark.parametrize("delivery", [d for d in DELIVERIES if d != "as_generated"])
def test_staging_tables_do_not_depend_on_delivery(
    delivery: str, outcomes: dict[str, Outcome]
) -> None:
    reference, other = outcomes["as_generated"], outcomes[delivery]
    assert lake.differing(other.tables, reference.tables) == [], (other.rows, reference.rows)


@pytest.mark.parametrize("delivery", [d for d in DELIVERIES if d != "as_generated"])
def test_report_files_do_not_depend_on_delivery(
    delivery: str, outcomes: dict[str, Outcome]
) -> None:
    reference, other = outcomes["as_generated"], outcomes[delivery]
    assert lake.differing(other.reports, reference.reports) == []
