"""The outcome record every probe-case module keeps: one JSON summary for docs/RELIABILITY.md."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts" / "reliability"


def probe_summary(name: str) -> tuple[Callable[[str, str], None], Any]:
    """A ``held(case, outcome)`` recorder and a module-scoped autouse fixture that writes
    ``test-artifacts/reliability/<name>.json`` once the module's cases have run.

    Only cases that reached their assertions are recorded, so the count is what held.
    """
    outcomes: dict[str, str] = {}

    def held(case: str, outcome: str) -> None:
        outcomes[case] = outcome

    @pytest.fixture(scope="module", autouse=True)
    def summary() -> Iterator[None]:
        yield
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        text = json.dumps(
            {"cases": len(outcomes), "held": len(outcomes), "outcomes": outcomes}, indent=2
        )
        (ARTIFACTS / f"{name}.json").write_text(text)

    return held, summary
