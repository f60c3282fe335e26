"""Importing Great Expectations early on a background thread, as ``flowehr run`` does."""

from __future__ import annotations

import sys

from assets.ehr import quality_checks


def test_background_import_loads_great_expectations_once(monkeypatch) -> None:
    monkeypatch.setattr(quality_checks, "_gx_import", None)
    quality_checks.import_great_expectations_in_background()
    first = quality_checks._gx_import
    quality_checks.import_great_expectations_in_background()
    assert quality_checks._gx_import is first and first is not None
    quality_checks.wait_for_great_expectations_import()
    assert not first.is_alive()
    assert all(module in sys.modules for module in quality_checks.GX_MODULES)


def test_waiting_without_a_background_import_returns_at_once(monkeypatch) -> None:
    monkeypatch.setattr(quality_checks, "_gx_import", None)
    quality_checks.wait_for_great_expectations_import()
