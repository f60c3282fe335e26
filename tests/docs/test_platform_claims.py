"""What the package claims about platforms is what is tested and documented."""

from __future__ import annotations

import re
import sys
import tomllib

from tests.conftest import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_tests_run_on_the_one_python_the_package_allows() -> None:
    project = _pyproject()
    assert project["project"]["requires-python"] == ">=3.11,<3.12"
    assert sys.version_info[:2] == (3, 11)
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert project["tool"]["mypy"]["python_version"] == "3.11"


def test_the_docs_name_no_other_python_version() -> None:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for version in re.findall(r"Python (3\.\d+)", text):
            assert version == "3.11", f"{path.name} mentions Python {version}"


def test_the_docs_claim_no_azure_storage_and_sql_server_only_as_untested() -> None:
    for path in DOCS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"\b(azure|adls|abfss?://)", line, re.IGNORECASE):
                assert "not supported" in line, f"{path.name}: {line}"
            claim = re.search(r"works the same|\bsupported\b|at scale", line)
            if re.search(r"SQL Server|mssql", line) and claim:
                assert re.search(r"untested|dialect", line), f"{path.name}: {line}"
