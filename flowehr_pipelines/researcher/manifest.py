"""Training-set manifests: what produced a training set, so that it can be rebuilt exactly.

A manifest records the spine (its file and SHA-256, or the cohort definition it was
built from), the feature selection, the Delta version each table was read at (feature
tables and a cohort's inputs), every code list used (name, version, SHA-256), the join
option, the output file and its SHA-256, and the code version. Rebuilding from it reads
the same versions of the same tables with the same spine (or rebuilds the cohort from
them, after checking its code lists' hashes), so the output is the same bytes (for the
same library versions, which the code version pins through the lock file).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_version() -> str:
    """The package version and, in a git checkout, the commit it was run from."""
    version = metadata.version("flowehr-pipelines")
    git = shutil.which("git")
    if git is None:
        return version
    try:
        commit = subprocess.run(  # nosec B603: fixed argv, no shell
            [git, "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+{commit}" if commit else version


def manifest_path(output: Path) -> Path:
    """Where an output's manifest goes: beside it, ``<output>.manifest.json``."""
    return output.with_name(output.name + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class TrainingSetManifest:
    """Everything a training set was built from."""

    spine_file: str
    spine_sha256: str
    features: list[str]
    entity_key: str
    event_time: str
    versions: dict[str, int]
    output_file: str
    output_sha256: str
    known_at_join: bool = True
    cohort: dict[str, Any] | None = None
    codelists: list[dict[str, str]] = field(default_factory=list)
    code_version: str = field(default_factory=code_version)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format: int = MANIFEST_FORMAT

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> TrainingSetManifest:
        """A manifest from its file.

        Raises:
            ValueError: one line, when the file is not a manifest this code can read.
        """
        try:
            data: Any = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read manifest {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path} is not a format-{MANIFEST_FORMAT} training-set manifest")
        try:
            versions = {str(k): int(v) for k, v in data["versions"].items()}
            return cls(**{**data, "versions": versions})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path} is not a complete training-set manifest ({exc})") from None
