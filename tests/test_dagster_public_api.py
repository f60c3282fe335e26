"""The project imports Dagster's public API only: nothing from ``dagster._*``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flowehr_pipelines", "assets", "resources", "transforms", "bench")


def private_imports(source: str) -> list[str]:
    """Every ``dagster._*`` module the source imports, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{node.lineno} {n}" for n in names if n.split(".")[0].startswith("dagster")]
    return [hit for hit in found if "._" in hit]


def test_no_module_imports_a_private_dagster_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{hit}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in private_imports(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_check_finds_a_private_import() -> None:
    source = "import dagster as dg\nfrom dagster._core.utils import make_new_run_id\n"
    assert private_imports(source) == ["2 dagster._core.utils"]
    assert private_imports("import dagster._check\n") == ["1 dagster._check"]
