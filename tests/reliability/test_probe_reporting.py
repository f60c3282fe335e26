"""The outside probe's reporting-domain failures, each kept as a case with the probe's input.

Each case feeds the real ingestion, staging and report assets (or the installed ``flowehr``
CLI) what the probe fed them: implausible CDC dates, an unreadable landing file, ids that
cannot be paths or partition keys, files that land after their day was reported, cells
that spreadsheets would run as formulas, NHS numbers in two spellings, and two runs at
once. Each must end as a quarantined record with its reason, a safe name, a corrected
version with a failing check, or one line naming the object; never a traceback, a
permanent block, wrong data or a leak. A JSON summary goes to
``test-artifacts/reliability/probe_reporting.json`` for docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.compute as pc
import pytest

from assets.reporting.ingestion import QUARANTINE
from assets.reports.definitions import REVISION_CHECK, build_defs
from assets.reports.id_check import REPORT_IDS_CHECK
from assets.reports.partitions import (
    BATCH_PARTITIONS,
    CLIENT_PARTITIONS,
    COMPLETED_BATCH_REPORT,
    COMPLETED_COMMS_REPORT,
)
from assets.reports.writing import (
    completed_batch_report_key,
    completed_comms_report_key,
    revision_key,
)
from flowehr_pipelines.config import Settings, load_settings
from flowehr_pipelines.run.runner import root_cause
from resources.object_store import LocalObjectStore
from tests.assets.reporting_world import Lake, item, lines, plan
from tests.assets.reports.test_reports_partitioned import (
    NOW,
    YESTERDAY,
    batch_plan,
    comms_plan,
    london,
    read_csv,
    refreshed,
    run_plan,
)
from tests.conftest import TEST_KEY
from tests.reliability.probe_summary import probe_summary

pytestmark = pytest.mark.reliability

held, summary = probe_summary("probe_reporting")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake.at(Path(settings.lake_root))


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def report_assets(settings: Settings) -> dict[dg.AssetKey, Any]:
    assets = build_defs(settings).assets or []
    return {key: a for a in assets for key in a.keys}  # type: ignore[union-attr]


def quarantine_reasons(lake: Lake) -> dict[str, str]:
    """Quarantined records' reasons by request item id (or file, for whole files)."""
    rows = lake.delta.read(QUARANTINE).to_pylist()
    out = {}
    for row in rows:
        try:
            key = json.loads(row["raw_line"])["requestitemid"]
        except (TypeError, ValueError, KeyError):
            key = row["_source_file"]
        out[key] = row["reason"]
    return out


# -- item 2 and 12: implausible CDC dates ------------------------------------------------------

DONE = london(YESTERDAY, 12)
DATES = {
    "year-0-utc": {"createddate": "0001-01-01T00:00:00Z"},
    "year-0-plus-one-hour": {"createddate": "0001-01-01T00:00:00+01:00"},
    "year-3000": {"createddate": "3000-01-01T00:00:00Z"},
    "year-1970": {"createddate": "1970-01-01T00:00:00Z"},
    "completed-before-created": {
        "createddate": "2026-04-05T12:00:00Z",
        "completeddate": "2026-04-04T12:00:00Z",
    },
}


def test_implausible_cdc_dates_are_quarantined_and_every_table_stays_readable(
    settings, lake, instance, report_assets
):
    records = [item("good", DONE, "DELIVERED", completed=DONE)]
    records.append(plan("good-p", DONE, "DELIVERED", item_id="good", completed=DONE))
    for case, dates in DATES.items():
        record = item(case, DONE, "DELIVERED", completed=DONE, request=f"r-{case}")
        record.update(dates)
        records.append(record)
    lake.land("dates", lines(records))
    lake.cycle(NOW)
    reasons = quarantine_reasons(lake)
    assert reasons["year-0-utc"] == "createddate is before 2000"
    assert reasons["year-0-plus-one-hour"] == "createddate is out of the representable range"
    assert reasons["year-3000"] == "createddate is in the future"
    assert reasons["year-1970"] == "createddate is before 2000"
    assert reasons["completed-before-created"] == "completeddate is before createddate"
    # Every staging table reads (year 0 once made every read fail), holding the good item.
    items = lake.staging("request_item_status")
    assert items["requestitemid"].to_pylist() == ["good"]
    for table in ("request_item_plan_status", "request_item_status_summary"):
        assert lake.staging(table).num_rows >= 1
    refreshed(instance)
    [result] = run_plan(report_assets, COMPLETED_COMMS_REPORT,
                        comms_plan(settings, lake, instance), lake, instance)  # fmt: skip
    assert result.success
    assert [r["requestitemid"] for r in read_csv(lake, completed_comms_report_key(
        "client-a", YESTERDAY))] == ["good"]  # fmt: skip
    for case in DATES:
        held(f"cdc-date-{case}", f"quarantined: {reasons[case]}")


# -- item 3: an unreadable landing file ----------------------------------------------------


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files with no read permission cannot be read, even by root (who runs CI here)."""
    if os.geteuid() != 0:
        return
    original = LocalObjectStore.read_bytes

    def read_bytes(self: LocalObjectStore, key: str) -> bytes:
        if not stat.S_IMODE(Path(self.uri(key)).stat().st_mode) & stat.S_IRUSR:
            raise PermissionError(13, "Permission denied", self.uri(key))
        return original(self, key)

    monkeypatch.setattr(LocalObjectStore, "read_bytes", read_bytes)


def test_an_unreadable_landing_file_is_quarantined_by_name_the_rest_ingested_then_retried(
    lake, unreadable
):
    first = lake.land("a-first", lines([item("i1", DONE, "SENDING")]))
    locked = lake.land("b-locked", lines([item("i2", DONE, "SENDING")]))
    last = lake.land("c-last", lines([item("i3", DONE, "SENDING")]))
    path = Path(lake.objects.uri(locked))
    path.chmod(0)
    try:
        stats = lake.ingest()
        again = lake.ingest()  # still unreadable: quarantined once, not twice
    finally:
        path.chmod(0o644)
    assert stats.records == 2 and again.records == 0
    history = lake.delta.read(("bronze", "transaction_history"))
    assert set(history["_source_file"].to_pylist()) == {first, last}
    quarantined = lake.delta.read(QUARANTINE).to_pylist()
    assert [(q["_source_file"], q["reason"]) for q in quarantined] == [
        (locked, "file could not be read: permission denied")
    ]
    fixed = lake.ingest()  # readable again: ingested, exactly once
    assert fixed.records == 1
    history = lake.delta.read(("bronze", "transaction_history"))
    assert sorted(history["requestitemid"].to_pylist()) == ["i1", "i2", "i3"]
    held("landing-file-unreadable", "quarantined by name, others ingested, ingested on rerun")


# -- item 4: ids that cannot be paths or partition keys ------------------------------------

LONG_ID = "x" * 5000
BAD_BATCHES = {"null-ref": None, "dot": ".", "dot-dot": "..", "long": LONG_ID}


def batch_records(request: str, refid: str | None, client: str = "client-a") -> list[dict]:
    created = DONE - timedelta(hours=1)
    return [
        item(f"{request[:8]}-i", DONE, "DELIVERED", request=request, created=created,
             completed=DONE, client=client, requestrefid=refid),
        plan(f"{request[:8]}-p", DONE, "DELIVERED", item_id=f"{request[:8]}-i", request=request,
             created=created, completed=DONE, client=client, requestrefid=refid),
    ]  # fmt: skip


def _check(settings: Settings, name: str, lake: Lake) -> dg.AssetCheckResult:
    [check] = [c for c in build_defs(settings).asset_checks or [] if c.check_key.name == name]  # type: ignore[union-attr]
    result = check(delta=lake.delta)  # type: ignore[operator]
    assert isinstance(result, dg.AssetCheckResult)
    return result


def test_one_bad_id_skips_or_safe_names_only_its_own_report(
    settings, lake, instance, report_assets
):
    records = batch_records("good", "ref-good")
    records += batch_records("null-ref", None)
    records += batch_records(".", "ref-dot")
    records += batch_records("r-dot-dot", "..")
    records += batch_records("r-long", LONG_ID)
    records += batch_records("r-pipe", "ref-pipe", client="client|pipe")
    lake.land("ids", lines(records))
    lake.cycle(NOW)
    refreshed(instance, window_start="2026-03-30")
    comms = comms_plan(settings, lake, instance)
    assert "client|pipe" not in instance.get_dynamic_partitions(CLIENT_PARTITIONS.name)
    assert all(r.success for r in run_plan(report_assets, COMPLETED_COMMS_REPORT, comms, lake,
                                           instance))  # fmt: skip
    batches = batch_plan(settings, lake, instance)
    # Dagster takes "." as a partition key; only its path segment needs a safe name.
    results = run_plan(report_assets, COMPLETED_BATCH_REPORT, batches, lake, instance)
    assert results and all(r.success for r in results)
    partitions = set(instance.get_dynamic_partitions(BATCH_PARTITIONS.name))
    assert {"good", "null-ref", "r-dot-dot", "r-long"} <= partitions
    reports = {str(p.relative_to(lake.root)) for p in Path(lake.root, "reports").rglob("*.csv")}
    assert completed_batch_report_key("client-a", "good", "ref-good") in reports
    null_key = completed_batch_report_key("client-a", "null-ref", None)
    assert null_key.endswith("/null-ref/~none/completed_batch_report_~none.csv")
    assert null_key in reports
    for request, refid in (("r-dot-dot", ".."), ("r-long", LONG_ID), (".", "ref-dot")):
        key = completed_batch_report_key("client-a", request, refid)
        assert "/~" in key and all(len(s.encode()) <= 150 for s in key.split("/"))
        assert key in reports
    # Nothing escaped the reports tree, and the client with '|' got no comms report.
    assert all(r.startswith("reports/completed_") for r in reports)
    # A '|' only breaks the comms report's two-dimension key: its batch report is written.
    assert completed_batch_report_key("client|pipe", "r-pipe", "ref-pipe") in reports
    assert not any("pipe" in r for r in reports if "completed_comms_report" in r)
    assert completed_comms_report_key("client-a", YESTERDAY) in reports
    result = _check(settings, REPORT_IDS_CHECK, lake)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["ids_skipped"].value == 1
    assert LONG_ID not in json.dumps(result.metadata["skipped"].value)  # named by hash only
    held("batch-null-requestrefid", f"written as {null_key.rsplit('/', 1)[1]}")
    held("batch-id-dot-and-dot-dot", "written under safe names ~<hash>")
    held("batch-id-5000-chars", "written under a safe name ~<hash>")
    held("client-id-with-pipe", "skipped with report_ids_usable failing (warn); others written")


# -- item 5: files landing after their day was reported ----------------------------------


def test_a_late_file_for_a_reported_day_writes_a_corrected_version_and_warns(
    settings, lake, instance, report_assets
):
    first = [item("a1", DONE, "DELIVERED", completed=DONE)]
    first.append(plan("a1-p", DONE, "DELIVERED", item_id="a1", completed=DONE))
    lake.land("first", lines(first))
    lake.cycle(NOW)
    refreshed(instance)
    run_plan(report_assets, COMPLETED_COMMS_REPORT, comms_plan(settings, lake, instance), lake,
             instance)  # fmt: skip
    key = completed_comms_report_key("client-a", YESTERDAY)
    original = lake.objects.read_bytes(key)
    late = [item(f"late{n}", DONE, "DELIVERED", completed=DONE) for n in range(3)]
    late += [plan(f"late{n}-p", DONE, "DELIVERED", item_id=f"late{n}", completed=DONE)
             for n in range(3)]  # fmt: skip
    lake.land("late", lines(late), day="2026/04/06")
    later = NOW + timedelta(hours=1)
    lake.cycle(later)
    refreshed(instance)
    [result] = run_plan(report_assets, COMPLETED_COMMS_REPORT,
                        comms_plan(settings, lake, instance, later), lake, instance)  # fmt: skip
    assert lake.objects.read_bytes(key) == original  # the sent report is never changed
    corrected = read_csv(lake, revision_key(key, 2))
    assert sorted(r["requestitemid"] for r in corrected) == ["a1", "late0", "late1", "late2"]
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == REVISION_CHECK and not check.passed
    assert check.metadata["corrected_versions"].value == [revision_key(key, 2)]
    # Nothing changed since: no third version, the check passes.
    [again] = run_plan(report_assets, COMPLETED_COMMS_REPORT,
                       comms_plan(settings, lake, instance, later), lake, instance)  # fmt: skip
    assert again.get_asset_check_evaluations()[0].passed
    assert not lake.objects.exists(revision_key(key, 3))
    held("late-cdc-file", "corrected _v2 written beside the original, check warns")


# -- item 6: CSV formula injection -------------------------------------------------------


def test_formula_like_cells_reach_report_csvs_inert(settings, lake, instance, report_assets):
    payloads = ['=HYPERLINK("http://x.test","y")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    records = []
    for n, payload in enumerate(payloads):
        records.append(item(f"f{n}", DONE, "DELIVERED", completed=DONE, requestitemrefid=payload))
        records.append(plan(f"f{n}-p", DONE, "DELIVERED", item_id=f"f{n}", completed=DONE,
                            requestitemrefid=payload))  # fmt: skip
    lake.land("formulas", lines(records))
    lake.cycle(NOW)
    refreshed(instance)
    run_plan(report_assets, COMPLETED_COMMS_REPORT, comms_plan(settings, lake, instance), lake,
             instance)  # fmt: skip
    rows = read_csv(lake, completed_comms_report_key("client-a", YESTERDAY))
    assert sorted(r["requestitemrefid"] for r in rows) == sorted(f"'{p}" for p in payloads)
    # Other cells are as they were: ids, statuses and times.
    assert sorted(r["requestitemid"] for r in rows) == [f"f{n}" for n in range(len(payloads))]
    assert {r["requestitemcompletedtime"] for r in rows} == {"2026-04-05T11:00:00.000Z"}
    held("csv-formula-injection", "text cells starting = + - @ tab CR get a leading '")


# -- item 10: NHS numbers as delivered ---------------------------------------------------


def test_cdc_nhs_numbers_are_normalised_like_the_ehr_path_and_invalid_ones_unhashed(lake):
    spellings = {"plain": "9434765919", "spaced": "943 476 5919", "dashed": "943-476-5919",
                 "invalid": "9434765918", "letters": "94347659AB"}  # fmt: skip
    lake.land("numbers", lines([item(n, DONE, "SENDING", nhsnumber=v) for n, v in
                                spellings.items()]))  # fmt: skip
    lake.cycle(NOW)
    table = lake.staging("request_item_status")
    hashes = dict(zip(table["requestitemid"].to_pylist(), table["nhsnumberhash"].to_pylist(),
                      strict=True))  # fmt: skip
    assert hashes["plain"] is not None
    assert hashes["spaced"] == hashes["dashed"] == hashes["plain"]
    assert hashes["invalid"] is None and hashes["letters"] is None
    assert pc.sum(pc.is_valid(table["nhsnumberhash"])).as_py() == 3
    held("cdc-nhs-number-spellings", "one pseudonym for every spelling; invalid numbers unhashed")


# -- item 1: two flowehr runs at once ----------------------------------------------------


def _flowehr(data: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FLOWEHR_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dh"),
           "FLOWEHR_PSEUDONYMISATION_KEY": TEST_KEY}  # fmt: skip
    env.pop("FLOWEHR_LAKE_ROOT", None)
    script = Path(sys.executable).with_name("flowehr")
    return subprocess.Popen([str(script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


HOLD = """
import sys, time
from pathlib import Path
from flowehr_pipelines.run.run_lock import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_two_runs_at_once_on_a_fresh_data_directory_both_complete(tmp_path: Path):
    data = tmp_path / "data"
    made = _flowehr(data, "demo-data", "--patients", "20", "--days", "2", "--events-per-day", "50")
    assert made.wait(timeout=120) == 0
    select = ("run", "--select", "key:bronze/transaction_history")
    first, second = _flowehr(data, *select), _flowehr(data, *select)
    try:
        outputs = [p.communicate(timeout=300) for p in (first, second)]
    finally:
        for p in (first, second):
            p.kill()
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert sum("waiting for flowehr run pid" in err for _, err in outputs) <= 1
    assert all("Traceback" not in out + err for out, err in outputs)
    again = _flowehr(data, *select)  # the instance still works
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(data / "dh")],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        refused = _flowehr(data, "run", "--no-wait", *select[1:])
        out, err = refused.communicate(timeout=120)
    finally:
        holder.kill()  # by its own pid
        holder.wait()
    lines_ = [line for line in err.splitlines() if line.strip()]
    assert refused.returncode != 0 and len(lines_) == 1, err
    assert f"pid {holder.pid}" in lines_[0] and "Traceback" not in out + err
    assert time.monotonic() - started < 60
    held("two-runs-at-once-fresh-instance", "second waits for the first; both succeed")
    held("run-while-locked-no-wait", f"one line: {lines_[0][:60]}...")


def test_summary_names_the_root_cause_not_the_wrapper():
    """Dagster's error chain as the runner sees it (a real failing step: tests/.../run)."""
    error = type("E", (), {"message": "dagster._core.errors.DagsterExecutionStepExecutionError: "
                           "Error occurred while executing op", "cause": None})()  # fmt: skip
    error.cause = type("C", (), {"message": "deltalake.exceptions.CommitFailedError: conflict\n"
                                 "more", "cause": None})()  # fmt: skip
    assert root_cause(error) == "CommitFailedError: conflict"
    held("run-summary-root-cause", "summary line is the innermost cause")
