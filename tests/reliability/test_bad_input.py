"""A catalogue of bad input, each case ending as a one-line error or a quarantine row.

One table (``CASES``) lists every case: its id, its input and the outcome it must have.

* ``quarantine``: the bad record lands in a quarantine table with a reason naming what
  was wrong, and the file or source table is fully accounted for: input rows equal
  accepted (bronze/silver) rows plus quarantined rows.
* ``accepted``: odd but valid input (a byte-order mark, CRLF line ends, emoji) is taken
  whole, with nothing quarantined and the values intact.
* ``error``: the real CLI (``flowehr_pipelines.cli.main``, in standalone mode as the
  console script runs it, a few cases through the installed ``flowehr`` executable)
  exits non-zero with exactly one line on stderr and no traceback.

CDC cases share one landing-zone ingestion and EHR cases one bronze + silver run
(module fixtures); config cases each run one command. A JSON summary goes to
``test-artifacts/reliability/bad_input.json`` for the docs.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pyarrow as pa
import pytest
from click.testing import CliRunner
from pydantic import Field

from assets.ehr.bronze_view import read_current
from assets.reporting.ingestion import QUARANTINE, TRANSACTION_HISTORY, transaction_history
from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.cli import main
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.definitions import defs
from flowehr_pipelines.run.parts import QUIET_CONSOLE
from flowehr_pipelines.run.runner import resolve_selection
from flowehr_pipelines.synthetic import write_ehr_source
from resources.delta.store import DeltaTableStore
from resources.object_store import LocalObjectStore
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.integration.postgres import find_pg_bin, postgres_server
from tests.lakes import local_objects, local_store
from transforms.identifiers import nhs_number_check_digit

pytestmark = pytest.mark.reliability

ARTIFACT = REPO_ROOT / "test-artifacts" / "reliability" / "bad_input.json"
Outcome = Literal["quarantine", "accepted", "error"]
NOW = datetime.now(UTC)
TS = int((NOW - timedelta(hours=1)).timestamp() * 1000)


@dataclass(frozen=True)
class Case:
    """One bad input: where it goes in, what it is, and how it must end."""

    id: str
    kind: Literal["cdc", "ehr", "config"]
    input: Any
    outcome: Outcome
    expect: str = ""
    """A regular expression the quarantine reason or the error line must match."""


# -- inputs ----------------------------------------------------------------------------


def record(**fields: Any) -> dict[str, Any]:
    """A valid CDC record, with some fields replaced."""
    base: dict[str, Any] = {
        "pk": "REQUEST#r1",
        "sk": "REQUEST_ITEM#i1",
        "timestamp": TS,
        "clientid": "client-1",
        "requestid": "r1",
        "requestitemid": "i1",
        "status": "DELIVERED",
        "createddate": (NOW - timedelta(hours=2)).isoformat(),
        "completedcommunicationtypes": ["SMS"],
        "ordernumber": 1,
    }
    base.update(fields)
    return base


def line(**fields: Any) -> bytes:
    return json.dumps(record(**fields)).encode()


GOOD = line(requestitemid="good")


def cdc(*lines: bytes) -> bytes:
    """A landed file: a valid line first (so one bad line must not sink it), then these."""
    return b"\n".join([GOOD, *lines]) + b"\n"


@dataclass(frozen=True)
class SourceRow:
    """A row added to an EHR source table (other columns copied from an existing row)."""

    table: str
    values: dict[str, Any]
    key: str | None = field(default=None)
    """The record_key its quarantine row must carry (default: the primary key value)."""


def valid_nhs_number(first_nine: str) -> str:
    check = nhs_number_check_digit(first_nine)
    assert check is not None
    return f"{first_nine}{check}"


FUTURE = (date.today() + timedelta(days=400)).isoformat()
CASES: list[Case] = [
    # CDC landing files (landing/transaction_history/...): quarantine or accept whole.
    Case("cdc_truncated_json", "cdc", cdc(GOOD[:40]), "quarantine", r"not valid JSON"),
    Case(
        "cdc_timestamp_as_text",
        "cdc",
        cdc(line(timestamp=str(TS))),
        "quarantine",
        r"timestamp must be whole epoch milliseconds",
    ),
    Case(
        "cdc_timestamp_as_float",
        "cdc",
        cdc(line(timestamp=TS + 0.5)),
        "quarantine",
        r"timestamp must be whole epoch milliseconds",
    ),
    Case(
        "cdc_timestamp_missing",
        "cdc",
        cdc(line(timestamp=None)),
        "quarantine",
        r"timestamp is missing",
    ),
    Case(
        "cdc_timestamp_in_future",
        "cdc",
        cdc(line(timestamp=TS + 30 * 24 * 3600 * 1000)),
        "quarantine",
        r"timestamp is in the future",
    ),
    Case(
        "cdc_timestamp_before_2015",
        "cdc",
        cdc(line(timestamp=86_400_000)),
        "quarantine",
        r"timestamp is before 2015",
    ),
    Case(
        "cdc_createddate_not_iso",
        "cdc",
        cdc(line(createddate="21/11/2026 10:00")),
        "quarantine",
        r"createddate is not an ISO 8601",
    ),
    Case(
        "cdc_createddate_number",
        "cdc",
        cdc(line(createddate=20261121)),
        "quarantine",
        r"createddate must be an ISO 8601 string",
    ),
    Case(
        "cdc_ordernumber_not_a_number",
        "cdc",
        cdc(line(ordernumber="one")),
        "quarantine",
        r"ordernumber must be a whole number",
    ),
    Case(
        "cdc_status_is_object",
        "cdc",
        cdc(line(status={"code": 1})),
        "quarantine",
        r"status must be text",
    ),
    Case(
        "cdc_list_field_is_text",
        "cdc",
        cdc(line(completedcommunicationtypes="SMS")),
        "quarantine",
        r"completedcommunicationtypes must be a list of text",
    ),
    Case(
        "cdc_line_is_json_array",
        "cdc",
        cdc(b"[1, 2, 3]"),
        "quarantine",
        r"line is JSON list, not an object",
    ),
    Case(
        "cdc_unknown_sk_prefix",
        "cdc",
        cdc(line(sk="BOGUS#1")),
        "quarantine",
        r"sk does not start with a known prefix",
    ),
    Case(
        "cdc_huge_line",
        "cdc",
        cdc(line(failedreason="x" * 1_100_000)),
        "quarantine",
        r"line is longer than",
    ),
    Case("cdc_huge_field_within_limit", "cdc", cdc(line(failedreason="y" * 500_000)), "accepted"),
    Case(
        "cdc_nul_escape_in_value",
        "cdc",
        cdc(line(status="DELI\x00VERED")),
        "quarantine",
        r"status contains a NUL character",
    ),
    Case(
        "cdc_raw_nul_byte",
        "cdc",
        cdc(line(status="DELIVERED").replace(b"DELI", b"DE\x00LI")),
        "quarantine",
        r"not valid JSON",
    ),
    Case(
        "cdc_lone_surrogate",
        "cdc",
        cdc(line(clientname="Trust \ud800")),
        "quarantine",
        r"clientname contains an unpaired UTF-16 surrogate",
    ),
    Case(
        "cdc_odd_unicode",
        "cdc",
        cdc(line(clientname="Trust \U0001f3e5 \u202eevil\u202c \u200bzero e\u0301 \ufeffx")),
        "accepted",
    ),
    Case(
        "cdc_invalid_utf8",
        "cdc",
        cdc(line(status="DELIVERED").replace(b"DELI", b"\xff\xfe")),
        "quarantine",
        r"line is not UTF-8",
    ),
    Case(
        "cdc_duplicate_json_key",
        "cdc",
        cdc(line(status="SENT")[:-1] + b', "status": "FAILED"}'),
        "quarantine",
        r"field 'status' appears more than once",
    ),
    Case(
        "cdc_duplicate_records",
        "cdc",
        cdc(line(requestitemid="dup"), line(requestitemid="dup")),
        "accepted",
    ),
    Case("cdc_empty_file", "cdc", b"", "accepted"),
    Case("cdc_vanished_file", "cdc", cdc(), "quarantine", r"file vanished before it was read"),
    Case(
        "cdc_byte_order_mark", "cdc", b"\xef\xbb\xbf" + cdc(line(requestitemid="bom")), "accepted"
    ),
    Case(
        "cdc_crlf_line_ends",
        "cdc",
        cdc(line(requestitemid="crlf")).replace(b"\n", b"\r\n"),
        "accepted",
    ),
    Case(
        "cdc_binary_garbage",
        "cdc",
        bytes(range(256)) * 4,
        "quarantine",
        r"not UTF-8|not valid JSON",
    ),
    # gzip-compressed landing files (*.jsonl.gz): their lines as plain ones, or refused whole.
    Case(
        "cdc_gzip_with_a_bad_line",
        "cdc",
        gzip.compress(cdc(GOOD[:40], line(requestitemid="zipped"))),
        "quarantine",
        r"not valid JSON",
    ),
    Case(
        "cdc_gzip_truncated",
        "cdc",
        gzip.compress(cdc(line(requestitemid="cut")))[:-12],
        "quarantine",
        r"^gzip file is truncated",
    ),
    Case(
        "cdc_gzip_named_but_plain",
        "cdc",
        cdc(line(requestitemid="plain")),
        "quarantine",
        r"^file named \.gz is not gzip-compressed$",
    ),
    # EHR source rows: load quarantine (wrong types) or silver quarantine, with a reason.
    Case(
        "ehr_nhs_number_check_digit_wrong",
        "ehr",
        SourceRow("patients", {"patient_id": 900001, "nhs_number": "9434765918"}),
        "quarantine",
        r"invalid NHS number",
    ),
    Case(
        "ehr_nhs_number_letters",
        "ehr",
        SourceRow("patients", {"patient_id": 900002, "nhs_number": "94347A5919"}),
        "quarantine",
        r"invalid NHS number",
    ),
    Case(
        "ehr_nhs_number_nine_digits",
        "ehr",
        SourceRow("patients", {"patient_id": 900003, "nhs_number": "943476591"}),
        "quarantine",
        r"invalid NHS number",
    ),
    Case(
        "ehr_nhs_number_null",
        "ehr",
        SourceRow("patients", {"patient_id": 900004, "nhs_number": None}),
        "quarantine",
        r"NHS number is missing",
    ),
    Case(
        "ehr_date_of_birth_in_future",
        "ehr",
        SourceRow(
            "patients",
            {
                "patient_id": 900005,
                "nhs_number": valid_nhs_number("943476591"),
                "date_of_birth": FUTURE,
            },
        ),
        "quarantine",
        r"date of birth is in the future",
    ),
    Case(
        "ehr_date_of_birth_impossible",
        "ehr",
        SourceRow(
            "patients",
            {
                "patient_id": 900006,
                "nhs_number": valid_nhs_number("401023213"),
                "date_of_birth": "1980-02-31",
            },
        ),
        "quarantine",
        r"date of birth is missing or not a date",
    ),
    Case(
        "ehr_visit_admitted_in_future",
        "ehr",
        SourceRow(
            "visits",
            {
                "visit_id": 900001,
                "admission_datetime": f"{FUTURE}T10:00:00Z",
                "discharge_datetime": None,
            },
        ),
        "quarantine",
        r"admission is in the future",
    ),
    Case(
        "ehr_visit_patient_id_is_text",
        "ehr",
        SourceRow("visits", {"visit_id": 900002, "patient_id": "P-12"}),
        "quarantine",
        r"wrong type in source: patient_id: expected int64",
    ),
    Case(
        "ehr_visit_orphan",
        "ehr",
        SourceRow("visits", {"visit_id": 900003, "patient_id": 99_999_999}),
        "quarantine",
        r"orphan: no valid patient",
    ),
    Case(
        "ehr_observation_heart_rate_is_text",
        "ehr",
        SourceRow("observations", {"observation_id": 900001, "heart_rate": "fast"}),
        "quarantine",
        r"wrong type in source: heart_rate: expected int64",
    ),
    Case(
        "ehr_lab_value_is_text",
        "ehr",
        SourceRow("lab_results", {"lab_result_id": 900001, "value": "high"}),
        "quarantine",
        r"wrong type in source: value: expected double",
    ),
    Case(
        "ehr_lab_primary_key_null",
        "ehr",
        SourceRow("lab_results", {"lab_result_id": None}, key="(missing)"),
        "quarantine",
        r"primary key is missing",
    ),
    Case(
        "ehr_lab_duplicate_primary_key",
        "ehr",
        SourceRow("lab_results", {"lab_result_id": 900002}),
        "quarantine",
        r"duplicate primary key",
    ),
    Case(
        "ehr_diagnosis_recorded_in_future",
        "ehr",
        SourceRow("diagnoses", {"diagnosis_id": 900001, "recorded_at": f"{FUTURE}T09:00:00Z"}),
        "quarantine",
        r"recording time is in the future",
    ),
    # Config and environment: one line on stderr, non-zero exit, no traceback.
    Case(
        "config_unreachable_database",
        "config",
        {"argv": ["run"], "env": {"FLOWEHR_EHR_URL": "postgresql+psycopg2://u@127.0.0.1:9/ehr"}},
        "error",
        r"cannot connect to source .*127\.0\.0\.1:9",
    ),
    Case(
        "config_wrong_database_password",
        "config",
        {"argv": ["run", "--select", "key:bronze/ehr/patients"], "postgres": "wrong-password"},
        "error",
        r"password authentication failed",
    ),
    Case(
        "config_source_database_lacks_a_table",
        "config",
        {"argv": ["run"], "sqlite": "CREATE TABLE patients (patient_id INTEGER)"},
        "error",
        r"source 'ehr' \(sqlite:///.*\) has no table 'visits', 'observations'",
    ),
    Case(
        "config_source_database_missing",
        "config",
        {"argv": ["run"]},
        "error",
        r"has no database at .*ehr\.db \(run `flowehr demo-data` first\)",
    ),
    Case(
        "config_secret_key_missing_outside_local",
        "config",
        {
            "argv": ["tables"],
            "env": {"FLOWEHR_ENV": "dev", "FLOWEHR_PSEUDONYMISATION_KEY": None},
            "subprocess": True,
        },
        "error",
        r"FLOWEHR_PSEUDONYMISATION_KEY is not set; it is required in the 'dev'",
    ),
    Case(
        "config_secret_key_empty_outside_local",
        "config",
        {"argv": ["run"], "env": {"FLOWEHR_ENV": "dev", "FLOWEHR_PSEUDONYMISATION_KEY": ""}},
        "error",
        r"FLOWEHR_PSEUDONYMISATION_KEY is not set",
    ),
    Case(
        "config_unresolved_token",
        "config",
        {"argv": ["etl", "head-state"], "env": {"FLOWEHR_ENV": "prod"}},
        "error",
        r"config\.prod\.yaml: key '.*' needs environment variable \w+",
    ),
    Case(
        "config_malformed_yaml",
        "config",
        {"argv": ["demo-data"], "local": "reporting:\n  clients: [a, b\n", "subprocess": True},
        "error",
        r"config\.local\.yaml \(line \d+, column \d+\)",
    ),
    Case(
        "config_top_level_not_a_mapping",
        "config",
        {"argv": ["tables"], "local": "- reporting\n"},
        "error",
        r"top level must be a mapping",
    ),
    Case(
        "config_unknown_key",
        "config",
        {"argv": ["tables"], "local": "reporting:\n  projection_window_dayz: 3\n"},
        "error",
        r"key 'reporting\.projection_window_dayz': Extra inputs are not permitted",
    ),
    Case(
        "config_two_wrong_keys_one_line",
        "config",
        {
            "argv": ["run"],
            "local": "reporting:\n  projection_window_days: soon\n"
            "ehr:\n  lock_stale_after_minutes: -5\n",
        },
        "error",
        r"projection_window_days'.*; .*lock_stale_after_minutes",
    ),
    Case(
        "config_wrong_type",
        "config",
        {"argv": ["etl", "head-state"], "local": "demo_data:\n  patients: many\n"},
        "error",
        r"key 'demo_data\.patients': Input should be a valid integer",
    ),
    Case(
        "config_file_missing",
        "config",
        {"argv": ["run"], "config_dir": "empty"},
        "error",
        r"config\.yaml: not found",
    ),
    Case(
        "config_unknown_source_name",
        "config",
        {"argv": ["etl", "head-state", "--source", "nope"]},
        "error",
        r"no data source connection named 'nope'",
    ),
]
RESULTS: dict[str, dict[str, Any]] = {}


def cases(kind: str) -> list[Any]:
    return [pytest.param(c, id=c.id) for c in CASES if c.kind == kind]


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    """Write the catalogue's outcomes for the docs once the cases have run.

    A run of some cases (``-k``) updates theirs and keeps the others' last outcome.
    """
    yield
    kinds: dict[str, int] = {}
    for case in CASES:
        kinds[case.outcome] = kinds.get(case.outcome, 0) + 1
    previous: dict[str, dict[str, Any]] = {}
    if ARTIFACT.exists():
        try:
            previous = {r["id"]: r for r in json.loads(ARTIFACT.read_text())["results"]}
        except (ValueError, KeyError, TypeError):
            previous = {}
    merged = {**previous, **RESULTS}
    results = [merged[c.id] for c in CASES if c.id in merged]
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(
        json.dumps(
            {
                "cases": len(CASES),
                "by_input": {k: sum(c.kind == k for c in CASES) for k in ("cdc", "ehr", "config")},
                "outcome_kinds": kinds,
                "recorded": len(results),
                "failures": sorted(r["id"] for r in results if not r["passed"]),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


def check(case: Case, observed: str, ok: bool, message: str) -> None:
    """Record a case's outcome for the summary, then assert it."""
    RESULTS[case.id] = {
        "id": case.id,
        "input": case.kind,
        "expected": case.outcome,
        "observed": observed,
        "passed": ok,
    }
    assert ok, message


def test_catalogue_has_at_least_30_named_cases_in_every_domain() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES), "case ids are unique"
    assert {c.kind for c in CASES} == {"cdc", "ehr", "config"}
    assert all(c.expect for c in CASES if c.outcome != "accepted")


# -- CDC landing files ------------------------------------------------------------------


class VanishingObjectStore(LocalObjectStore):
    """A local store where some files disappear between listing and reading."""

    vanish: list[str] = Field(default_factory=list)

    def read_bytes(self, key: str) -> bytes:
        if key in self.vanish:
            self._path(key).unlink(missing_ok=True)
        return super().read_bytes(key)


def landing_key(case: Case) -> str:
    day = NOW.date()
    partition = f"__year={day:%Y}/__month={day:%m}/__day={day:%d}"
    suffix = ".jsonl.gz" if case.id.startswith("cdc_gzip") else ".jsonl"
    return f"landing/transaction_history/{partition}/{case.id}{suffix}"


# Files never parsed, each accounted for by one quarantine row of its own.
WHOLE_FILE_QUARANTINED = ("cdc_vanished_file", "cdc_gzip_truncated", "cdc_gzip_named_but_plain")


@dataclass
class Ingested:
    lake: Path
    history: pa.Table
    quarantine: pa.Table
    delta: DeltaTableStore
    success: bool


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    """Every CDC case in its own landed file, ingested by the real asset in one run."""
    lake = tmp_path_factory.mktemp("bad_cdc") / "lake"
    for case in CASES:
        if case.kind == "cdc":
            path = lake / landing_key(case)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(case.input)
    delta = local_store(lake)
    objects = VanishingObjectStore(
        root=str(lake), vanish=[landing_key(c) for c in CASES if c.id == "cdc_vanished_file"]
    )
    result = dg.materialize(
        [transaction_history],
        resources={"objects": objects, "delta": delta},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    return Ingested(
        lake, delta.read(TRANSACTION_HISTORY.path), delta.read(QUARANTINE), delta, result.success
    )


def input_lines(data: bytes) -> int:
    """Lines that carry something (blank lines are not records)."""
    return sum(1 for raw in data.splitlines() if raw.strip())


def rows_for(table: pa.Table, key: str) -> list[dict[str, Any]]:
    return [r for r in table.to_pylist() if r["_source_file"] == key]


@pytest.mark.parametrize("case", cases("cdc"))
def test_bad_cdc_file_is_quarantined_with_a_reason_or_accepted_whole(
    case: Case, ingested: Ingested
) -> None:
    assert ingested.success, "one bad file must not fail the ingestion of the others"
    key = landing_key(case)
    accepted = rows_for(ingested.history, key)
    quarantined = rows_for(ingested.quarantine, key)
    reasons = sorted({q["reason"] for q in quarantined})
    expected_lines = input_lines(case.input)
    if case.id in WHOLE_FILE_QUARANTINED:
        expected_lines = 1  # the file: it was never read, or not read whole
    elif landing_key(case).endswith(".gz"):
        expected_lines = input_lines(gzip.decompress(case.input))
    balanced = len(accepted) + len(quarantined) == expected_lines
    if case.outcome == "quarantine":
        ok = balanced and bool(quarantined) and all(re.search(case.expect, r) for r in reasons)
    else:
        ok = balanced and not quarantined
    check(
        case,
        f"{len(accepted)} accepted, {len(quarantined)} quarantined: {reasons}",
        ok,
        f"{case.id}: {expected_lines} input line(s), {len(accepted)} accepted, "
        f"{len(quarantined)} quarantined, reasons {reasons}",
    )


def test_accepted_odd_input_keeps_its_values_intact(ingested: Ingested) -> None:
    by_case = {c.id: rows_for(ingested.history, landing_key(c)) for c in CASES if c.kind == "cdc"}
    assert [r["requestitemid"] for r in by_case["cdc_byte_order_mark"]] == ["good", "bom"]
    assert [r["status"] for r in by_case["cdc_crlf_line_ends"]] == ["DELIVERED"] * 2
    odd = by_case["cdc_odd_unicode"][1]["clientname"]
    assert odd == "Trust \U0001f3e5 \u202eevil\u202c \u200bzero e\u0301 \ufeffx"
    assert len(by_case["cdc_huge_field_within_limit"][1]["failedreason"]) == 500_000
    assert [r["requestitemid"] for r in by_case["cdc_duplicate_records"]] == ["good", "dup", "dup"]


def test_vanished_file_is_not_marked_so_it_is_ingested_when_it_returns(
    ingested: Ingested,
) -> None:
    from assets.reporting.ingestion import pending_landing_keys

    case = next(c for c in CASES if c.id == "cdc_vanished_file")
    assert not (ingested.lake / landing_key(case)).exists()
    objects = local_objects(ingested.lake)
    # The gzip files refused whole are not marked either: a whole copy is ingested.
    refused = [landing_key(c) for c in CASES if c.id in WHOLE_FILE_QUARANTINED[1:]]
    assert sorted(pending_landing_keys(objects, ingested.delta)) == sorted(refused)
    (ingested.lake / landing_key(case)).write_bytes(case.input)
    pending = pending_landing_keys(objects, ingested.delta)
    assert sorted(pending) == sorted([*refused, landing_key(case)])


# -- EHR source rows --------------------------------------------------------------------

EHR_TABLES = {
    "patients": "patient_id",
    "visits": "visit_id",
    "observations": "observation_id",
    "lab_results": "lab_result_id",
    "diagnoses": "diagnosis_id",
}


@dataclass
class EhrRun:
    source: Path
    delta: DeltaTableStore
    success: bool
    failures: list[str]


def _drop_key_constraint(db: sqlite3.Connection, table: str) -> None:
    """A replica without key constraints (as many reporting copies are)."""
    ddl = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    db.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    db.execute(ddl.replace("INTEGER PRIMARY KEY", "INTEGER"))
    db.execute(f"INSERT INTO {table} SELECT * FROM {table}_old")
    db.execute(f"DROP TABLE {table}_old")


def add_source_row(db: sqlite3.Connection, row: SourceRow) -> None:
    """Copy a live row of the table, replace some values, and give it a new change number."""
    db.row_factory = sqlite3.Row
    template = dict(
        db.execute(f"SELECT * FROM {row.table} WHERE is_deleted = 0 LIMIT 1").fetchone()
    )
    change = db.execute("SELECT MAX(change_seq) FROM " + row.table).fetchone()[0] + 1
    values = {**template, **row.values, "change_seq": change}
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    db.execute(f"INSERT INTO {row.table} ({columns}) VALUES ({marks})", list(values.values()))
    db.row_factory = None


@pytest.fixture(scope="module")
def ehr_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EhrRun]:
    """A small source with every EHR case added, through bronze and silver once."""
    data_dir = tmp_path_factory.mktemp("bad_ehr")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWEHR_CONFIG_DIR", str(REPO_ROOT))
        mp.setenv("FLOWEHR_DATA_DIR", str(data_dir))
        mp.setenv("FLOWEHR_ENV", "ci")
        mp.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
        settings = load_settings()
        db_path = data_dir / "source" / "ehr.db"
        db_path.parent.mkdir(parents=True)
        write_ehr_source(
            db_path, patients=12, days=2, start_date=date.today() - timedelta(days=3), seed=11
        )
        with sqlite3.connect(db_path) as db:
            _drop_key_constraint(db, "lab_results")
            for case in CASES:
                if case.kind == "ehr":
                    add_source_row(db, case.input)
                    if case.id == "ehr_lab_duplicate_primary_key":
                        add_source_row(db, case.input)
        # Bronze and silver only, without their (GX) checks: the cases are about rows.
        definitions = defs()
        keys = set(resolve_selection(definitions, "key:bronze/ehr/* or key:silver/ehr/*") or [])
        job = definitions.resolve_job_def(ALL_ASSETS_JOB)
        result = job.get_subset(
            asset_selection=keys, asset_check_selection=set()
        ).execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), run_config=QUIET_CONSOLE, raise_on_error=False
        )
        failures = [
            f"{e.step_key}: {e.step_failure_data.error.message.splitlines()[0]}"
            for e in result.all_events
            if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
        ]
        from flowehr_pipelines.deployment import build_delta_store

        yield EhrRun(db_path, build_delta_store(settings), result.success, failures)


def _quarantined(run: EhrRun, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in (
        ("bronze", "ehr", f"quarantine_{table}"),
        ("bronze", "ehr", f"load_quarantine_{table}"),
    ):
        stored = run.delta.read_or_none(path)
        rows.extend(stored.to_pylist() if stored is not None else [])
    return rows


@pytest.mark.parametrize("case", cases("ehr"))
def test_bad_source_row_is_quarantined_with_a_reason(case: Case, ehr_run: EhrRun) -> None:
    row: SourceRow = case.input
    key_column = EHR_TABLES[row.table]
    key = row.key or str(row.values[key_column])
    reasons = sorted(
        {q["reason"] for q in _quarantined(ehr_run, row.table) if q["record_key"] == key}
    )
    published = ehr_run.delta.read(("silver", "ehr", row.table), columns=[key_column])
    in_silver = key != "(missing)" and str(key) in {
        str(v) for v in published[key_column].to_pylist()
    }
    ok = bool(reasons) and all(re.search(case.expect, r) for r in reasons) and not in_silver
    check(
        case,
        f"quarantined: {reasons}; in silver: {in_silver}",
        ok,
        f"{case.id}: reasons {reasons}, in silver {in_silver}, run failures {ehr_run.failures}",
    )


@pytest.mark.parametrize("table", sorted(EHR_TABLES))
def test_every_source_row_is_published_or_quarantined(table: str, ehr_run: EhrRun) -> None:
    assert ehr_run.success, ehr_run.failures
    with sqlite3.connect(ehr_run.source) as db:
        live = db.execute(f"SELECT COUNT(*) FROM {table} WHERE is_deleted = 0").fetchone()[0]
    silver = ehr_run.delta.read(("silver", "ehr", table)).num_rows
    assert live == silver + len(_quarantined(ehr_run, table)), table


# -- config and environment -------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL that checks passwords (SCRAM) for the wrong-credentials case."""
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    # Not under pytest's tmp tree: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="flowehr-pg-"))
    try:
        with postgres_server(base, password="right-password") as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env_for(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str | None]:
    spec = case.input
    env: dict[str, str | None] = dict(spec.get("env", {}))
    if "local" in spec or spec.get("config_dir") == "empty":
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        if "local" in spec:
            for name in ("config.yaml", "config.ci.yaml"):
                (config_dir / name).write_text((REPO_ROOT / name).read_text())
            (config_dir / "config.local.yaml").write_text(spec["local"])
        env["FLOWEHR_CONFIG_DIR"] = str(config_dir)
    if "sqlite" in spec:
        db = tmp_path / "source" / "ehr.db"
        db.parent.mkdir(parents=True)
        with sqlite3.connect(db) as conn:
            conn.execute(spec["sqlite"])
        env["FLOWEHR_DATA_DIR"] = str(tmp_path)
    if "postgres" in spec:
        url = request.getfixturevalue("postgres_url")
        env["FLOWEHR_EHR_URL"] = url.replace(
            "flowehr:right-password@", f"flowehr:{spec['postgres']}@"
        )
    return env


@pytest.mark.parametrize("case", cases("config"))
def test_bad_config_is_one_line_on_stderr_and_a_non_zero_exit(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    env = _env_for(case, tmp_path, request)
    argv = case.input["argv"]
    if case.input.get("subprocess"):
        # The installed console script, exactly as a user runs it.
        child = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
        for name in [k for k, v in env.items() if v is None]:
            child.pop(name, None)
        script = Path(sys.executable).with_name("flowehr")
        done = subprocess.run(
            [str(script), *argv], env=child, capture_output=True, text=True, timeout=120
        )
        code, stderr, stdout, crashed = done.returncode, done.stderr, done.stdout, False
    else:
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        result = CliRunner().invoke(main, argv)
        code, stderr, stdout = result.exit_code, result.stderr, result.stdout
        crashed = not isinstance(result.exception, SystemExit | None)
    lines = [text for text in stderr.splitlines() if text.strip()]
    ok = (
        code != 0
        and not crashed
        and len(lines) == 1
        and "Traceback" not in stderr + stdout
        and re.search(case.expect, lines[0]) is not None
    )
    if "postgres" in case.input:
        ok = ok and case.input["postgres"] not in stderr + stdout
    check(
        case,
        f"exit {code}: {lines}",
        ok,
        f"{case.id}: exit {code}, stderr {stderr!r}, stdout {stdout[-500:]!r}",
    )


def test_changelog_load_of_a_repeated_key_keeps_the_newest_and_quarantines_the_rest(
    tmp_path: Path,
) -> None:
    """A MERGE cannot take two rows of one key: the load must not fail, nor drop one."""
    from assets.ehr.bronze_loader import load_source_table
    from assets.ehr.change_batches import load_quarantine_path
    from assets.ehr.settings import SourceTable
    from resources.sql_source import SqlSourceResource

    db_path = tmp_path / "ehr.db"
    write_ehr_source(db_path, patients=5, days=1, start_date=date.today(), seed=3)
    with sqlite3.connect(db_path) as db:
        _drop_key_constraint(db, "lab_results")
    source = SqlSourceResource(url=f"sqlite:///{db_path}")
    delta = local_store(tmp_path / "lake")
    spec = SourceTable(name="lab_results", primary_key=["lab_result_id"])
    assert (
        load_source_table(source_name="ehr", table=spec, source=source, delta=delta).mode == "bulk"
    )
    with sqlite3.connect(db_path) as db:
        key = db.execute("SELECT MIN(lab_result_id) FROM lab_results").fetchone()[0]
        for value in (1.5, 2.5):
            add_source_row(db, SourceRow("lab_results", {"lab_result_id": key, "value": value}))
    result = load_source_table(source_name="ehr", table=spec, source=source, delta=delta)
    assert result.mode == "changelog" and result.rows_updated == 1
    bronze = [
        r
        for r in read_current(
            delta, ("bronze", "ehr", "lab_results"), ["lab_result_id"]
        ).to_pylist()
        if r["lab_result_id"] == key
    ]
    assert [r["value"] for r in bronze] == [2.5]
    (older,) = delta.read(load_quarantine_path("ehr", "lab_results")).to_pylist()
    assert older["record_key"] == str(key) and "duplicate primary key" in older["reason"]
