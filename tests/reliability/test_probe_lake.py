"""The outside probe's lake failures, each kept as a case with the probe's input.

A symbolic link in ``gold/features/`` to ``bronze/ehr/patients`` let ``flowehr features
head`` print raw identifiers while ``privacy-scan`` reported the lake clean; corrupt Delta
logs failed with errors that named no table or file (and stopped housekeeping), and a
0-byte commit was read as an empty one. Each case must end as one line naming the object
(and the way out), with a documented recovery that works; never a traceback, a leak or a
silent loss. A JSON summary goes to ``test-artifacts/reliability/probe_lake.json``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from click.testing import CliRunner

from assets.ehr.etl_state import ETL_STATE_TABLE, EtlStateStore
from assets.features.tables import feature_key
from assets.housekeeping import HOUSEKEEPING_LOG, build_defs
from assets.reporting.staging import STAGING_KEYS
from flowehr_pipelines.cli import main
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from flowehr_pipelines.privacy_scan import KnownIdentifiers
from flowehr_pipelines.privacy_scan_lake import scan_names
from resources.delta.log_health import COMMITS, BrokenTableError
from resources.delta.store import DeltaTableStore
from resources.object_store import LocalObjectStore
from tests.flowehr_pipelines.researcher.test_store import feature_rows, news2_row
from tests.reliability.probe_summary import probe_summary

pytestmark = pytest.mark.reliability

held, summary = probe_summary("probe_lake")

NHS_NUMBER = "9434765919"
BRONZE_PATIENTS = ("bronze", "ehr", "patients")


@pytest.fixture
def delta() -> DeltaTableStore:
    COMMITS.forget()  # each case damages logs this process may have checked already
    return build_delta_store(load_settings())


@pytest.fixture
def root(delta: DeltaTableStore) -> Path:
    return Path(delta.storage.root)


@pytest.fixture
def published(delta: DeltaTableStore) -> None:
    """A published feature table and a bronze table holding raw identifiers."""
    rows = [news2_row(1, 1, 1), news2_row(2, 3, 4, "p2")]
    delta.overwrite(feature_key("news2").path, feature_rows("news2", rows))
    raw = pa.table({"nhs_number": [NHS_NUMBER], "name": ["Ada Probe"], "postcode": ["N1 9GU"]})
    delta.overwrite(BRONZE_PATIENTS, raw)


def head(path: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["features", "head", path])
    return result.exit_code, result.output


def log_file(root: Path, table: tuple[str, ...], version: int) -> Path:
    return root.joinpath(*table, "_delta_log", f"{version:020d}.json")


# -- item 7: links out of the published zones ----------------------------------------------


def test_a_link_in_gold_features_to_bronze_is_refused_and_flagged(
    published: None, root: Path
) -> None:
    link = root / "gold" / "features" / "probe_link"
    link.symlink_to(root.joinpath(*BRONZE_PATIENTS), target_is_directory=True)
    code, output = head("gold/features/probe_link")
    assert code != 0
    assert len(output.strip().splitlines()) == 1, output
    assert "not a published table" in output and "bronze/ehr/patients" in output
    assert NHS_NUMBER not in output and "Ada" not in output
    findings = scan_names(LocalObjectStore(root=str(root)), root / "none", [], KnownIdentifiers())
    described = [f.describe() for f in findings]
    assert described == [
        "gold/features/probe_link: a symbolic link to 'bronze/ehr/patients', "
        "outside gold/features/; remove the link"
    ]
    link.unlink()  # the way out: the published table still reads
    code, output = head("gold/features/news2")
    assert code == 0 and "news2_total" in output
    held("symlink gold/features/x -> bronze/ehr/patients", "refused in one line; scan flags it")


def test_a_linked_zone_directory_is_refused_too(published: None, root: Path) -> None:
    """The probe's variant: the whole ``reporting`` zone a link into bronze."""
    (root / "reporting").symlink_to(root / "bronze" / "ehr", target_is_directory=True)
    code, output = head("reporting/patients")
    assert code != 0 and len(output.strip().splitlines()) == 1, output
    assert "outside reporting" in output and NHS_NUMBER not in output
    findings = scan_names(LocalObjectStore(root=str(root)), root / "none", [], KnownIdentifiers())
    assert [f.location for f in findings] == ["reporting"]
    held("reporting -> bronze/ehr (zone directory linked)", "refused in one line; scan flags it")


def test_a_link_inside_a_zone_to_its_own_tables_still_reads(published: None, root: Path) -> None:
    alias = root / "gold" / "features" / "news2_alias"
    alias.symlink_to(root / "gold" / "features" / "news2", target_is_directory=True)
    code, output = head("gold/features/news2_alias")
    assert code == 0 and "news2_total" in output, output
    findings = scan_names(LocalObjectStore(root=str(root)), root / "none", [], KnownIdentifiers())
    assert findings == []
    held("link within gold/features", "reads; not flagged")


# -- item 11: broken Delta logs --------------------------------------------------------------


def etl_state_with_history(delta: DeltaTableStore) -> EtlStateStore:
    state = EtlStateStore(delta)
    for number in (10, 20, 30):
        state.set("ehr", "patients", changelog_number=number, load_mode="changelog", rows_loaded=3)
    return state


def test_a_corrupt_commit_names_the_table_and_file_and_moving_it_aside_recovers(
    delta: DeltaTableStore, root: Path, tmp_path: Path
) -> None:
    etl_state_with_history(delta)
    newest = delta.version(ETL_STATE_TABLE)
    assert newest is not None
    commit = log_file(root, ETL_STATE_TABLE, newest)
    commit.write_text('{"add": {"path": "part-')  # a commit cut short
    COMMITS.forget()
    with pytest.raises(BrokenTableError) as caught:
        EtlStateStore(delta).get("ehr", "patients")
    message = str(caught.value)
    assert "\n" not in message
    assert f"internal/etl_state: Delta log file _delta_log/{newest:020d}.json" in message
    assert "line 1 is not valid JSON" in message and "OPERATIONS.md" in message
    code, output = _cli("etl", "head-state")
    assert code != 0 and "internal/etl_state" in output and f"{newest:020d}.json" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    shutil.move(commit, tmp_path / commit.name)  # OPERATIONS: move the broken commit aside
    state = EtlStateStore(delta).get("ehr", "patients")
    assert state is not None and state.changelog_number == 20  # the version before
    EtlStateStore(delta).set(
        "ehr", "patients", changelog_number=30, load_mode="changelog", rows_loaded=3
    )
    assert EtlStateStore(delta).get("ehr", "patients").changelog_number == 30  # type: ignore[union-attr]
    held("internal/etl_state commit 'Json error'", "names table and file; moved aside, rerun ok")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_a_broken_checkpoint_names_its_file_and_moving_it_aside_recovers(
    delta: DeltaTableStore, root: Path, tmp_path: Path
) -> None:
    etl_state_with_history(delta)
    delta.table(ETL_STATE_TABLE).create_checkpoint()
    log_dir = root.joinpath(*ETL_STATE_TABLE, "_delta_log")
    checkpoint = next(log_dir.glob("*.checkpoint.parquet"))
    checkpoint.write_bytes(b"not parquet")
    COMMITS.forget()
    with pytest.raises(BrokenTableError) as caught:
        delta.read(ETL_STATE_TABLE)
    assert f"_delta_log/{checkpoint.name} is not a readable checkpoint" in str(caught.value)
    assert str(caught.value).startswith("internal/etl_state: ")
    for name in (checkpoint.name, "_last_checkpoint"):  # OPERATIONS: both aside
        shutil.move(log_dir / name, tmp_path / name)
    state = EtlStateStore(delta).get("ehr", "patients")
    assert state is not None and state.changelog_number == 30  # nothing lost
    held("internal/etl_state 'Invalid Checkpoint'", "names the checkpoint; moved aside, all rows")


def test_an_empty_commit_is_an_error_not_an_empty_table(
    delta: DeltaTableStore, root: Path, tmp_path: Path
) -> None:
    table = ("reporting", "probe_zero_byte")
    for day in range(3):
        delta.append(table, pa.table({"day": [day]}))
    commit = log_file(root, table, 2)
    commit.write_bytes(b"")
    COMMITS.forget()
    with pytest.raises(BrokenTableError) as caught:
        delta.read(table)
    assert str(caught.value).startswith(
        "reporting/probe_zero_byte: Delta log file _delta_log/00000000000000000002.json "
        "is empty (0 bytes)"
    )
    shutil.move(commit, tmp_path / commit.name)
    assert delta.read(table).num_rows == 2  # back to version 1; the lost write is rerun
    delta.append(table, pa.table({"day": [2]}))
    assert sorted(delta.read(table).column("day").to_pylist()) == [0, 1, 2]
    held("0-byte commit", "an error naming the file; moved aside, rerun restores the rows")


def test_an_empty_first_commit_names_the_file(delta: DeltaTableStore, root: Path) -> None:
    table = ("reporting", "probe_zero_first")
    delta.append(table, pa.table({"day": [0]}))
    log_file(root, table, 0).write_bytes(b"")
    COMMITS.forget()
    with pytest.raises(BrokenTableError, match=r"00000000000000000000\.json is empty"):
        delta.read(table)
    held("0-byte first commit", "an error naming the file")


def test_housekeeping_names_a_broken_table_and_housekeeps_the_rest(
    delta: DeltaTableStore, root: Path
) -> None:
    etl_state_with_history(delta)
    staging = STAGING_KEYS[0].path
    for day in range(3):
        delta.append(staging, pa.table({"day": [day]}))
    commit = log_file(root, ETL_STATE_TABLE, delta.version(ETL_STATE_TABLE) or 0)
    commit.write_text("{not json\n")
    COMMITS.forget()
    defs = build_defs(load_settings())
    result = dg.materialize(
        [defs.get_assets_def(HOUSEKEEPING_LOG)], resources={"delta": delta}, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert description is not None
    assert description.startswith("housekeeping done for 1 table(s), but 1 have a broken Delta")
    assert "internal/etl_state: Delta log file" in description and "\n" not in description
    log = delta.read(HOUSEKEEPING_LOG.path).to_pylist()
    assert [r["table_name"] for r in log] == ["/".join(staging)]
    assert log[0]["files_compacted"] == 3
    held("housekeeping with a broken internal/etl_state", "others housekept; fails naming it")


def test_commit_checks_cost_one_listing_then_a_stat_per_new_version(
    delta: DeltaTableStore, root: Path
) -> None:
    """The happy path stays cheap: a version checked once is not listed again in the same
    process (damage to an already-checked commit shows in the next process)."""
    table = ("reporting", "probe_checked")
    delta.append(table, pa.table({"day": [0]}))
    delta.append(table, pa.table({"day": [1]}))
    delta.read(table)
    log_file(root, table, 1).write_bytes(b"")  # damage after the check: not re-listed
    assert delta.read(table).num_rows == 1
    COMMITS.forget()
    with pytest.raises(BrokenTableError):
        delta.read(table)
