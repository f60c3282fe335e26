"""Naming broken Delta log files: what ``find_broken_file`` finds, and what it leaves alone."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pa_fs
import pytest
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from resources.delta.log_health import (
    BrokenTableError,
    CommitCheck,
    broken_log_error,
    find_broken_file,
    first_line,
)
from resources.delta.store import DeltaTableStore

TABLE = ("internal", "probe")


def filesystem(store: DeltaTableStore) -> pa_fs.FileSystem:
    return store.storage.filesystem(store.uri(TABLE))


def three_commits(store: DeltaTableStore) -> Path:
    for day in range(3):
        store.append(TABLE, pa.table({"day": [day]}))
    return Path(store.uri(TABLE)) / "_delta_log"


def test_a_healthy_log_has_no_broken_file(store: DeltaTableStore) -> None:
    three_commits(store)
    store.table(TABLE).create_checkpoint()
    assert find_broken_file(filesystem(store)) is None


def test_the_first_bad_line_of_a_commit_is_named(store: DeltaTableStore) -> None:
    log = three_commits(store)
    commit = log / f"{1:020d}.json"
    commit.write_text(commit.read_text() + "{oops\n")
    lines = len(commit.read_text().splitlines())
    assert find_broken_file(filesystem(store)) == (
        f"_delta_log/{1:020d}.json",
        f"line {lines} is not valid JSON",
    )


def test_commits_a_readable_checkpoint_covers_are_not_read(store: DeltaTableStore) -> None:
    log = three_commits(store)
    store.table(TABLE).create_checkpoint()
    (log / f"{1:020d}.json").write_text("{oops\n")  # delta-rs reads the checkpoint instead
    assert find_broken_file(filesystem(store)) is None


def test_only_log_damage_is_renamed(store: DeltaTableStore) -> None:
    three_commits(store)
    fs = filesystem(store)
    assert broken_log_error(fs, TABLE, TableNotFoundError("no table")) is None
    assert broken_log_error(fs, TABLE, CommitFailedError("lost a race")) is None
    assert broken_log_error(fs, TABLE, DeltaError("version 0 is gone")) is None
    assert broken_log_error(fs, TABLE, ValueError("not a delta error")) is None


def test_first_line_drops_the_rust_backtrace() -> None:
    assert first_line(DeltaError("Kernel error: Json\n   0: <unknown>\n")) == "Kernel error: Json"


def test_commit_check_finds_an_empty_commit_among_new_versions(store: DeltaTableStore) -> None:
    log = three_commits(store)
    check = CommitCheck()
    check.check(filesystem(store), store.uri(TABLE), TABLE, 1)  # a listing, up to version 1
    (log / f"{2:020d}.json").write_bytes(b"")
    expected = f"internal/probe: Delta log file _delta_log/{2:020d}.json is empty"
    with pytest.raises(BrokenTableError, match=expected):
        check.check(filesystem(store), store.uri(TABLE), TABLE, 2)  # a stat of version 2
