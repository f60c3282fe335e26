"""No patient identifier and no secret key ever reaches what is published or logged.

The pipeline runs at small data scales; after each, ``flowehr_pipelines.privacy_scan``
collects the identifiers actually in the sources (NHS numbers, names, dates of birth,
postcodes, MRNs) and searches every table and file of the published zones for them and
for their shapes. Planted leaks prove the scanner (and ``flowehr privacy-scan``) fails.

The first scale runs as a user runs it: ``flowehr run`` in the ``local`` environment,
which generates the pseudonymisation key into the data directory. That key must then
appear nowhere: not in the run's stdout/stderr (captured at the file-descriptor level,
so Spark's and Dagster's output is included), not in any event record of the Dagster
instance, not in any table of any zone, and not in any file under the data directory
other than the key file itself.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from click.testing import CliRunner

from flowehr_pipelines.cli import main
from flowehr_pipelines.config import Settings, load_settings, local_key_file
from flowehr_pipelines.definitions import defs
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.privacy_scan import KnownIdentifiers, ScanResult, scan_table
from flowehr_pipelines.privacy_scan_lake import scan_lake
from flowehr_pipelines.run.runner import run_assets
from flowehr_pipelines.synthetic import write_cdc_landing, write_ehr_source
from tests.conftest import REPO_ROOT, TEST_KEY
from tests.reliability.lake import delta_tables, lake_store

# Whole runs of the graph, minutes each: make test-long (run by .ci/run after make test).
pytestmark = [pytest.mark.reliability, pytest.mark.long]


@dataclass(frozen=True)
class Scale:
    name: str
    patients: int
    days: int
    events_per_day: int


ARTIFACT = REPO_ROOT / "test-artifacts" / "reliability" / "privacy.json"
SCALES = (Scale("xs", 25, 3, 120), Scale("s", 90, 5, 300))


@dataclass
class ScaleRun:
    scale: Scale
    data_dir: Path
    settings: Settings
    known: KnownIdentifiers
    scan: ScanResult
    success: bool
    output: str = ""
    key: str = ""


@contextmanager
def captured_fds(path: Path) -> Iterator[None]:
    """Send this process's fd 1 and 2 (Python, Dagster, Spark's JVM) to a file."""
    with open(path, "wb") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _generate(settings: Settings, scale: Scale, seed: int) -> None:
    start = date.today() - timedelta(days=scale.days - 1)
    db = settings.data_dir / "source" / "ehr.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    write_ehr_source(db, patients=scale.patients, days=scale.days, start_date=start, seed=seed)
    write_cdc_landing(
        Path(settings.landing_root),
        days=scale.days,
        events_per_day=scale.events_per_day,
        start_date=start,
        seed=seed,
    )


def _write_summary(done: list[ScaleRun]) -> None:
    """Scales, what was scanned and the leaks found, for docs/RELIABILITY.md."""
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    scales = [
        {
            "scale": r.scale.name,
            "patients": r.scale.patients,
            "days": r.scale.days,
            "events_per_day": r.scale.events_per_day,
            "known_nhs_numbers": len(r.known.nhs_numbers),
            "tables_scanned": len(r.scan.tables),
            "files_scanned": len(r.scan.files),
            "leaks": len(r.scan.findings),
        }
        for r in done
    ]
    ARTIFACT.write_text(json.dumps({"scales": scales}, indent=2))


@pytest.fixture(scope="module")
def runs() -> Iterator[list[ScaleRun]]:
    """The whole graph at each scale; the first through ``flowehr run`` in ``local``."""
    base = Path(tempfile.mkdtemp(prefix="flowehr-privacy-"))
    done: list[ScaleRun] = []
    try:
        for i, scale in enumerate(SCALES):
            data_dir = base / scale.name
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("FLOWEHR_CONFIG_DIR", str(REPO_ROOT))
                mp.setenv("FLOWEHR_DATA_DIR", str(data_dir))
                mp.setenv("DAGSTER_HOME", str(data_dir / "dagster_home"))
                mp.delenv("FLOWEHR_LAKE_ROOT", raising=False)
                mp.delenv("FLOWEHR_EHR_URL", raising=False)
                if i == 0:
                    mp.setenv("FLOWEHR_ENV", "local")
                    mp.delenv("FLOWEHR_PSEUDONYMISATION_KEY", raising=False)
                else:
                    mp.setenv("FLOWEHR_ENV", "ci")
                    mp.setenv("FLOWEHR_PSEUDONYMISATION_KEY", TEST_KEY)
                settings = load_settings()
                _generate(settings, scale, seed=100 + i)
                output, key = "", ""
                if i == 0:
                    log = base / "run.log"
                    with captured_fds(log):
                        result = CliRunner().invoke(main, ["run"])
                    output = log.read_text(errors="replace") + result.output
                    success = result.exit_code == 0
                    key = local_key_file(settings).read_text().strip()
                else:
                    summary = run_assets(defs(), dg.DagsterInstance.ephemeral())
                    success = summary.success
                known, scan = scan_lake(settings)
                done.append(ScaleRun(scale, data_dir, settings, known, scan, success, output, key))
        _write_summary(done)
        yield done
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_pipeline_runs_at_every_scale(runs: list[ScaleRun]) -> None:
    assert [r.success for r in runs] == [True] * len(SCALES), runs[0].output[-3000:]


@pytest.mark.parametrize("index", range(len(SCALES)), ids=[s.name for s in SCALES])
def test_published_zones_hold_no_patient_identifier(runs: list[ScaleRun], index: int) -> None:
    run = runs[index]
    # The scan looked at something real: identifiers from the source, every zone's tables.
    assert len(run.known.nhs_numbers) >= run.scale.patients
    assert run.known.names and run.known.dates_of_birth and run.known.postcodes
    assert len(run.known.mrns) >= run.scale.patients
    zones = {t.split("/")[0] for t in run.scan.tables}
    assert {"gold", "reporting"} <= zones
    assert any(f.startswith("reports/") and f.endswith(".csv") for f in run.scan.files)
    assert run.scan.findings == [], [f.describe() for f in run.scan.findings]


def test_privacy_scan_command_passes_on_the_published_lake(
    runs: list[ScaleRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWEHR_DATA_DIR", str(runs[-1].data_dir))
    result = CliRunner().invoke(main, ["privacy-scan"])
    assert result.exit_code == 0, result.output
    assert "no patient identifiers in" in result.stdout


# -- planted leaks ----------------------------------------------------------------------


def _source_patients(settings: Settings) -> list[dict[str, str]]:
    with sqlite3.connect(settings.data_dir / "source" / "ehr.db") as db:
        db.row_factory = sqlite3.Row
        query = "SELECT nhs_number, mrn, given_name, family_name, date_of_birth, postcode"
        return [dict(r) for r in db.execute(f"{query} FROM patients LIMIT 20")]


def test_planted_leaks_fail_the_scan_naming_table_and_column_never_the_value(
    runs: list[ScaleRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "data"
    shutil.copytree(runs[-1].data_dir, copy, ignore=shutil.ignore_patterns("dagster_home"))
    monkeypatch.setenv("FLOWEHR_DATA_DIR", str(copy))
    settings = load_settings()
    delta = build_delta_store(settings)
    patients = _source_patients(settings)
    digits = [p["nhs_number"].replace(" ", "") for p in patients if p["nhs_number"]]
    spaced = f"{digits[0][:3]} {digits[0][3:6]} {digits[0][6:]}"
    status = delta.read(("reporting", "request_item_status"))
    n = status.num_rows
    leaked = status.append_column(
        "nhsnumber", pa.array([digits[i % len(digits)] for i in range(n)])
    ).append_column("note", pa.array([f"call back re {spaced}"] * n))
    delta.overwrite(("reporting", "request_item_status_copy"), leaked)
    delta.overwrite(
        ("gold", "features", "leaky"),
        pa.table(
            {
                "visit_id": pa.array(range(len(patients)), pa.int64()),
                "patient": [f"{p['given_name']} {p['family_name']}" for p in patients],
                "born": pa.array(
                    [date.fromisoformat(p["date_of_birth"]) for p in patients], pa.date32()
                ),
                "hospital_number": [p["mrn"] for p in patients],
            }
        ),
    )
    report = Path(settings.lake_root) / "reports" / "leak" / "extract.csv"
    report.parent.mkdir(parents=True)
    report.write_text("client,postcode\n" + "".join(f"c1,{p['postcode']}\n" for p in patients))

    result = CliRunner().invoke(main, ["privacy-scan"])
    assert result.exit_code == 1, result.output
    found = {line.split(":")[0] for line in result.stdout.splitlines() if line.startswith("LEAK")}
    assert found == {
        "LEAK reporting/request_item_status_copy column 'nhsnumber'",
        "LEAK reporting/request_item_status_copy column 'note'",
        "LEAK gold/features/leaky column 'patient'",
        "LEAK gold/features/leaky column 'born'",
        "LEAK gold/features/leaky column 'hospital_number'",
        "LEAK reports/leak/extract.csv column 'postcode'",
    }
    kinds = result.stdout
    for kind in ("NHS number", "name", "full date of birth", "MRN", "full postcode"):
        assert kind in kinds
    values = [*digits, spaced, *(str(v) for p in patients for v in p.values() if v)]
    assert not [v for v in values if v in result.output], "the scan never prints a value"


def test_shape_patterns_catch_identifiers_the_source_does_not_hold() -> None:
    table = pa.table(
        {
            "free_text": ["seen at NW1 2BU today", "ok"],
            "ref": ["NHS no. 401 023 2137", "x"],
            "hash": ["0123456789abcdef" * 4, "a" * 64],
            "epoch": pa.array([1_700_000_000, 1_700_000_001], pa.int64()),
        }
    )
    kinds = {(f.column, f.kind) for f in scan_table("t", table, KnownIdentifiers())}
    assert kinds == {("free_text", "full postcode"), ("ref", "NHS number")}


# -- the secret key ---------------------------------------------------------------------


def test_local_key_is_nowhere_but_its_own_file(runs: list[ScaleRun]) -> None:
    run = runs[0]
    key = run.key
    assert len(key) >= 32 and run.settings.env == "local"
    key_file = local_key_file(run.settings)
    # 1. The run's own output (stdout and stderr of this process, JVM included).
    assert "SUCCESS" in run.output and key not in run.output
    # 2. Every event record of every run in the instance's storage, metadata included.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(run.settings.dagster_home))
        instance = dg.DagsterInstance.get()
        records = [
            dg.serialize_value(entry)
            for r in instance.get_runs()
            for entry in instance.all_logs(r.run_id)
        ]
        instance.dispose()
    assert len(records) > 100
    assert not [r for r in records if key in r]
    # 3. Every table of every zone, read as values (Parquet pages may be compressed).
    store = lake_store(Path(run.settings.lake_root))
    tables = delta_tables(Path(run.settings.lake_root))
    assert any(t.startswith("bronze/") for t in tables) and any(
        t.startswith("internal/") for t in tables
    )
    holding = [t for t in tables if key in str(store.read(tuple(t.split("/"))).to_pylist())]
    assert holding == []
    # 4. Every file under the data directory, the Dagster home and logs included.
    files = [p for p in run.data_dir.rglob("*") if p.is_file() and p != key_file]
    assert len(files) > 50
    raw = key.encode()
    assert [str(p) for p in files if raw in p.read_bytes()] == []
