"""Code lists: versioned files of clinical codes, each pinned by its content hash.

A code list is a CSV of ``code,term`` under this package (``icd10/`` or ``snomedct/``),
registered in ``codelists.yaml`` with its coding system, every version's file and
SHA-256, and the version used by default. Loading checks the hash, so a list cannot
change under a cohort or training set that recorded it; a new version is a new file.

Matching (:func:`matches_sql`): ICD-10 codes are compared without dots and by prefix,
so a listed category (``A41``) takes in its subdivisions (``A41.9``) and a listed
subdivision its UK fifth-character extensions; SNOMED CT concepts are compared
exactly (a list should already hold the descendants it wants, as OpenSAFELY's do).
Hand-rolled rather than a library: the rules are these few lines, and the code-list
libraries in use (OpenSAFELY's) are services, not packages.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

CODELIST_DIR = Path(__file__).parent
REGISTRY = CODELIST_DIR / "codelists.yaml"

System = Literal["icd10", "snomedct"]
SYSTEMS: dict[str, re.Pattern[str]] = {
    "icd10": re.compile(r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,2})?$"),
    "snomedct": re.compile(r"^[0-9]{6,18}$"),
}


@dataclass(frozen=True)
class CodeList:
    """One version of one code list, loaded and verified."""

    name: str
    system: System
    version: str
    sha256: str
    description: str
    codes: tuple[str, ...]

    @property
    def reference(self) -> str:
        """``name@version``: how manifests and cohorts record it."""
        return f"{self.name}@{self.version}"

    def record(self) -> dict[str, str]:
        """What a manifest keeps of it."""
        return {
            "name": self.name,
            "version": self.version,
            "system": self.system,
            "sha256": self.sha256,
        }


def normalise_code(code: str, system: str) -> str:
    """The form codes are compared in: ICD-10 upper case without the dot."""
    cleaned = code.strip().upper()
    return cleaned.replace(".", "") if system == "icd10" else cleaned


@cache
def _registry(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a code-list registry")
    return loaded


def available(registry: Path = REGISTRY) -> dict[str, dict[str, Any]]:
    """Every registered list: name to its registry entry."""
    return dict(_registry(registry))


def load_codelist(reference: str, *, registry: Path = REGISTRY) -> CodeList:
    """A code list by ``name`` (its pinned version) or ``name@version``, hash-checked.

    Raises:
        KeyError: no such list or version (one line, naming those that exist).
        ValueError: the file's hash differs from the registry's, or a code is malformed.
    """
    name, _, version = reference.strip().partition("@")
    entries = _registry(registry)
    if name not in entries:
        raise KeyError(f"no code list '{name}' (known: {', '.join(sorted(entries))})")
    entry = entries[name]
    version = version or str(entry["pinned"])
    versions = {str(k): v for k, v in entry["versions"].items()}
    if version not in versions:
        raise KeyError(
            f"code list '{name}' has no version '{version}' (versions: {', '.join(versions)})"
        )
    system = str(entry["system"])
    if system not in SYSTEMS:
        raise ValueError(f"code list '{name}': unknown coding system '{system}'")
    file = registry.parent / versions[version]["file"]
    content = file.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != versions[version]["sha256"]:
        raise ValueError(
            f"code list {name}@{version} ({file.name}) has sha256 {digest[:12]}, not the "
            f"pinned {str(versions[version]['sha256'])[:12]}: add a new version instead"
        )
    codes = []
    for line, row in enumerate(csv.DictReader(content.decode().splitlines()), start=2):
        code = (row.get("code") or "").strip().upper()
        if not SYSTEMS[system].match(code):
            raise ValueError(f"code list {name}@{version} line {line}: '{code}' is not {system}")
        codes.append(normalise_code(code, system))
    return CodeList(
        name=name,
        system=system,  # type: ignore[arg-type]
        version=version,
        sha256=digest,
        description=str(entry.get("description", "")),
        codes=tuple(sorted(set(codes))),
    )


def matches_sql(column: str, codelist: CodeList) -> str:
    """A DuckDB condition: ``column`` (a recorded code) is in ``codelist``."""
    if codelist.system == "snomedct":
        return f"upper(trim({column})) IN ({', '.join(_literal(c) for c in codelist.codes)})"
    recorded = f"upper(replace(trim({column}), '.', ''))"
    prefixes = " OR ".join(f"starts_with({recorded}, {_literal(c)})" for c in codelist.codes)
    return f"({prefixes})"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
