"""Tests for the synthetic NHS Notify style CDC landing files."""

from __future__ import annotations

import calendar
import gzip
import json
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowehr_pipelines.synthetic import write_cdc_landing
from flowehr_pipelines.synthetic.cdc_files import partition_dir
from flowehr_pipelines.synthetic.cdc_model import MALFORMED_KINDS, CdcGenerationStats
from transforms.cdc import REQUEST_ITEM_FIELDS, REQUEST_ITEM_PLAN_FIELDS
from transforms.identifiers import nhs_number_problem

START = date(2026, 11, 1)
DAYS = 4
DAY_MS = 86_400_000
START_MS = calendar.timegm(START.timetuple()) * 1000

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PART_RE = re.compile(
    r"transaction_history/__year=(\d{4})/__month=(\d\d)/__day=(\d\d)/part-\d{5}\.jsonl$"
)
ITEM_ORDER = {"PENDING_ENRICHMENT": 0, "ENRICHED": 1, "SENDING": 2, "DELIVERED": 3, "FAILED": 3}
PLAN_ORDER = {"PENDING": 0, "SENDING": 1, "DELIVERED": 2, "FAILED": 2, "SKIPPED": 2}


def _write(landing: Path, **overrides: Any) -> CdcGenerationStats:
    args: dict[str, Any] = {
        "days": DAYS,
        "events_per_day": 3_000,
        "start_date": START,
        "seed": 5,
        "malformed_rate": 0.01,
        "duplicate_rate": 0.02,
    }
    args.update(overrides)
    return write_cdc_landing(landing, **args)


def _classify(line: str) -> str | None:
    """The malformed kind of a line, or None when it is a well-formed record."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return "truncated" if line.startswith('{"') else "not_json"
    if not isinstance(obj, dict):
        return "not_object"
    if "sk" not in obj:
        return "missing_sk"
    if "timestamp" not in obj:
        return "missing_timestamp"
    if not isinstance(obj["timestamp"], int):
        return "bad_timestamp_type"
    if not ISO_MS.match(obj.get("createddate") or ""):
        return "non_iso_date"
    return None


def _lines(files: list[Path]) -> list[tuple[Path, str]]:
    return [(path, line) for path in files for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CdcGenerationStats]:
    root = tmp_path_factory.mktemp("landing")
    return root, _write(root, lines_per_file=2_000)


def _records(files: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for _, line in _lines(files) if _classify(line) is None]


def test_write_cdc_landing_is_byte_identical_for_same_seed(tmp_path: Path) -> None:
    first = _write(tmp_path / "a", days=2, events_per_day=1_000)
    second = _write(tmp_path / "b", days=2, events_per_day=1_000)
    other = _write(tmp_path / "c", days=2, events_per_day=1_000, seed=6)
    names = [p.relative_to(tmp_path / "a") for p in first.files]
    assert names == [p.relative_to(tmp_path / "b") for p in second.files]
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in second.files]
    assert (first.records, first.duplicates, first.malformed) == (
        second.records,
        second.duplicates,
        second.malformed,
    )
    assert [p.read_bytes() for p in first.files] != [p.read_bytes() for p in other.files]


def test_write_cdc_landing_partitions_by_delivery_day(
    landing: tuple[Path, CdcGenerationStats],
) -> None:
    root, stats = landing
    on_disk = sorted(root.rglob("*.jsonl"))
    assert on_disk == sorted(stats.files)
    days = set()
    for path in stats.files:
        match = PART_RE.search(path.as_posix())
        assert match, path
        days.add(date(int(match[1]), int(match[2]), int(match[3])))
    assert days == {START + timedelta(days=i) for i in range(DAYS)}
    assert not list(root.rglob("*.tmp")) and not list(root.glob(".cdc-spill-*"))


def test_write_cdc_landing_timestamps_within_delivery_window(
    landing: tuple[Path, CdcGenerationStats],
) -> None:
    _, stats = landing
    late = 0
    for path, line in _lines(stats.files):
        if _classify(line) is not None:
            continue
        match = PART_RE.search(path.as_posix())
        assert match
        day_start = START_MS + (int(match[3]) - START.day) * DAY_MS
        ts = json.loads(line)["timestamp"]
        assert day_start - DAY_MS <= ts < day_start + DAY_MS
        late += ts < day_start
    assert late > 0  # some records arrive a day late


def test_write_cdc_landing_fields_and_key_prefixes(
    landing: tuple[Path, CdcGenerationStats],
) -> None:
    _, stats = landing
    records = _records(stats.files)
    kinds: Counter[str] = Counter()
    legacy_templates = 0
    for record in records:
        assert record["pk"] == f"CLIENT#{record['clientid']}"
        assert isinstance(record["timestamp"], int)
        prefix = record["sk"].split("#", 1)[0]
        kinds[prefix] += 1
        if prefix == "REQUEST_ITEM":
            assert list(record) == list(REQUEST_ITEM_FIELDS)
            assert record["sk"] == f"REQUEST_ITEM#{record['requestitemid']}"
            assert nhs_number_problem(record["nhsnumber"]) is None
            assert re.fullmatch(r"[A-Z]\d{5}", record["patientodscode"])
            assert record["status"] in ITEM_ORDER
            assert record["clientname"].startswith(("Hospital Trust", *"ABCD"))
            assert record["sendinggroupname"] and ISO_MS.match(record["sendinggroupcreateddate"])
        else:
            assert prefix == "REQUEST_ITEM_PLAN"
            assert list(record)[: len(REQUEST_ITEM_PLAN_FIELDS)] == list(REQUEST_ITEM_PLAN_FIELDS)
            assert record["sk"] == f"REQUEST_ITEM_PLAN#{record['requestitemplanid']}"
            assert "nhsnumber" not in record
            assert record["communicationtype"] in {"NHSAPP", "EMAIL", "SMS", "LETTER"}
            assert record["channeltype"] in {"primary", "secondary"}
            assert record["supplier"] in {"MBA", "NOTIFY", "SYNERTEC", "PRECISIONPROCO"}
            assert isinstance(record["ordernumber"], int) and record["ordernumber"] >= 1
            assert record["status"] in PLAN_ORDER
            assert record["contactdetailsource"] in {"PDS", "CLIENT"}
            assert record["senderodscode"]
            # A plan is sent once it is SENDING; a skipped one never is.
            if record["status"] in ("SENDING", "DELIVERED", "FAILED"):
                assert ISO_MS.match(record["datesent"])
            else:
                assert record["datesent"] is None
            if record["templateid"] is None:
                legacy_templates += 1
                suppliers = record["templates"]["suppliers"]
                assert list(suppliers) == [record["supplier"].lower()]
            else:
                assert set(record) == set(REQUEST_ITEM_PLAN_FIELDS)
        if record.get("completeddate") is not None:
            assert ISO_MS.match(record["completeddate"])
    assert set(kinds) == {"REQUEST_ITEM", "REQUEST_ITEM_PLAN"}
    assert legacy_templates > 0
    assert len({r["clientid"] for r in records}) == 4


def test_write_cdc_landing_lifecycles_move_forward(
    landing: tuple[Path, CdcGenerationStats],
) -> None:
    _, stats = landing
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in _records(stats.files):
        if not record["sk"].startswith("CLIENT#"):
            history[record["sk"]].append(record)
    terminal_items = stuck_items = 0
    for sk, changes in history.items():
        changes.sort(key=lambda r: r["timestamp"])
        order = ITEM_ORDER if sk.startswith("REQUEST_ITEM#") else PLAN_ORDER
        ranks = [order[r["status"]] for r in changes]
        assert ranks == sorted(ranks), sk
        last = changes[-1]
        if sk.startswith("REQUEST_ITEM#"):
            if last["status"] in ("DELIVERED", "FAILED"):
                terminal_items += 1
                assert ISO_MS.match(last["completeddate"])
                assert isinstance(last["completedcommunicationtypes"], list)
                assert all(isinstance(t, str) for t in last["failedcommunicationtypes"])
                if last["status"] == "FAILED":
                    assert last["failedreason"] and last["failedreasoncode"]
                else:
                    assert last["completedcommunicationtypes"]
            elif last["timestamp"] < START_MS + DAY_MS:
                stuck_items += 1  # days old and still not finished
    assert terminal_items > 0
    assert stuck_items > 0


def test_write_cdc_landing_malformed_counts_match_parse(
    landing: tuple[Path, CdcGenerationStats],
) -> None:
    _, stats = landing
    found: Counter[str] = Counter()
    good = 0
    for _, line in _lines(stats.files):
        assert line and "\n" not in line
        kind = _classify(line)
        if kind is None:
            good += 1
        else:
            found[kind] += 1
    assert dict(found) == {k: v for k, v in stats.malformed.items() if v}
    assert set(stats.malformed) == set(MALFORMED_KINDS)
    assert all(stats.malformed[kind] > 0 for kind in MALFORMED_KINDS)
    assert good == stats.records


def test_write_cdc_landing_duplicates_are_exact_redeliveries(
    landing: tuple[Path, CdcGenerationStats],
) -> None:
    _, stats = landing
    counts = Counter(line for _, line in _lines(stats.files) if _classify(line) is None)
    extra = sum(n - 1 for n in counts.values())
    assert stats.duplicates > 0
    assert extra == stats.duplicates


def test_write_cdc_landing_volume_near_events_per_day(
    landing: tuple[Path, CdcGenerationStats],
) -> None:
    _, stats = landing
    assert 0.75 * 3_000 * DAYS <= stats.records <= 1.25 * 3_000 * DAYS


def test_write_cdc_landing_splits_files_by_lines_per_file(tmp_path: Path) -> None:
    stats = _write(tmp_path, days=2, events_per_day=1_200, lines_per_file=250)
    sizes = [len(path.read_text().splitlines()) for path in stats.files]
    assert max(sizes) <= 250
    assert sizes.count(250) >= 4
    first_day = partition_dir(tmp_path, START)
    names = sorted(p.name for p in first_day.iterdir())
    assert names == [f"part-{i:05d}.jsonl" for i in range(len(names))]
    assert len(names) >= 4


def test_write_cdc_landing_rerun_leaves_no_stale_files(tmp_path: Path) -> None:
    _write(tmp_path, days=3, events_per_day=500, lines_per_file=100)
    other_start = START + timedelta(days=10)
    stats = _write(tmp_path, days=1, events_per_day=300, start_date=other_start)
    assert sorted(tmp_path.rglob("*.jsonl")) == sorted(stats.files)
    assert all(path.parent == partition_dir(tmp_path, other_start) for path in stats.files)
    assert not [p for p in tmp_path.rglob("*") if p.is_dir() and not any(p.iterdir())]


def test_write_cdc_landing_compressed_holds_the_same_lines_as_plain(tmp_path: Path) -> None:
    plain = _write(tmp_path / "plain", days=2, events_per_day=400, lines_per_file=300)
    packed = _write(
        tmp_path / "packed", days=2, events_per_day=400, lines_per_file=300, compress=True
    )
    again = _write(
        tmp_path / "again", days=2, events_per_day=400, lines_per_file=300, compress=True
    )
    assert [p.name for p in packed.files] == [f"{p.name}.gz" for p in plain.files]
    for plain_file, packed_file, again_file in zip(
        plain.files, packed.files, again.files, strict=True
    ):
        assert gzip.decompress(packed_file.read_bytes()) == plain_file.read_bytes()
        assert packed_file.read_bytes() == again_file.read_bytes(), "same seed, same bytes"
    assert (packed.records, packed.duplicates, packed.malformed) == (
        plain.records,
        plain.duplicates,
        plain.malformed,
    )


def test_write_cdc_landing_replaces_compressed_files_with_plain_ones(tmp_path: Path) -> None:
    _write(tmp_path, days=1, events_per_day=300, compress=True)
    stats = _write(tmp_path, days=1, events_per_day=300)
    assert not list(tmp_path.rglob("*.gz"))
    assert sorted(tmp_path.rglob("*.jsonl")) == sorted(stats.files)
