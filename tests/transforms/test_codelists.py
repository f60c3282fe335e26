"""Code lists: pinned by hash, versioned, and matched as each coding system means."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from transforms.codelists import REGISTRY, available, load_codelist, matches_sql


def matching(codes: list[str], reference: str, registry: Path = REGISTRY) -> list[str]:
    codelist = load_codelist(reference, registry=registry)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (code VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [(c,) for c in codes])
    rows = con.execute(f"SELECT code FROM t WHERE {matches_sql('code', codelist)}").fetchall()
    return [r[0] for r in rows]


def test_every_registered_list_loads_at_its_pinned_version_with_its_hash() -> None:
    for name, entry in available().items():
        loaded = load_codelist(name)
        assert loaded.version == str(entry["pinned"]) and loaded.codes, name
        assert loaded.sha256 == entry["versions"][loaded.version]["sha256"]
        assert load_codelist(f"{name}@{loaded.version}") == loaded


def test_icd10_categories_take_in_their_subdivisions_and_dots_do_not_matter() -> None:
    recorded = ["A41.9", "a419", "A40.1", "A41", "A411 ", "A49.9", "J18.9", "A4"]
    assert matching(recorded, "sepsis") == ["A41.9", "a419", "A40.1", "A41", "A411 "]
    assert matching(["I50.9", "I50", "I51.0"], "heart-failure") == ["I50.9", "I50"]


def test_snomed_concepts_match_exactly() -> None:
    assert matching(["91302008", "913020081", "10001005"], "sepsis-snomed") == [
        "91302008",
        "10001005",
    ]


def test_a_changed_file_or_unknown_version_is_refused_in_one_line(tmp_path: Path) -> None:
    copy = tmp_path / "codelists"
    shutil.copytree(REGISTRY.parent, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    listed = copy / "icd10" / "sepsis-2026-12.csv"
    listed.write_text(listed.read_text() + "A42,Not sepsis\n")
    with pytest.raises(ValueError, match=r"sepsis@2026-12 .* add a new version instead"):
        load_codelist("sepsis", registry=copy / "codelists.yaml")
    with pytest.raises(KeyError, match="no version '2019'"):
        load_codelist("sepsis@2019")
    with pytest.raises(KeyError, match="no code list 'sepsiss'"):
        load_codelist("sepsiss")
