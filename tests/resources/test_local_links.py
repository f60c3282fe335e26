"""Symbolic links that lead out of a directory, found without following them."""

from __future__ import annotations

from pathlib import Path

from resources.local_links import escaping_link, links_under, shown


def zone(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "gold" / "t" / "_delta_log").mkdir(parents=True)
    (tmp_path / "bronze" / "p").mkdir(parents=True)
    return tmp_path / "gold", tmp_path / "bronze" / "p"


def test_no_links_means_nothing_escapes(tmp_path: Path) -> None:
    gold, _ = zone(tmp_path)
    assert list(links_under(gold)) == []
    assert escaping_link(gold / "t", gold.resolve()) is None


def test_a_linked_log_directory_escapes(tmp_path: Path) -> None:
    gold, bronze = zone(tmp_path)
    (gold / "t" / "_delta_log").rmdir()
    (gold / "t" / "_delta_log").symlink_to(bronze, target_is_directory=True)
    link, target = escaping_link(gold / "t", gold.resolve()) or (None, None)
    assert link == gold / "t" / "_delta_log" and target == bronze.resolve()
    assert shown(target, tmp_path) == "bronze/p"


def test_a_link_that_stays_inside_does_not_escape(tmp_path: Path) -> None:
    gold, _ = zone(tmp_path)
    (gold / "alias").symlink_to(gold / "t", target_is_directory=True)
    assert list(links_under(gold)) == [gold / "alias"]
    assert escaping_link(gold / "alias", gold.resolve()) is None


def test_a_path_outside_the_lake_is_not_named(tmp_path: Path) -> None:
    assert shown(Path("/elsewhere/x"), tmp_path) == "a path outside the lake"
