"""Databricks jobs import ``transforms`` without Dagster, so no transform may import it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import transforms


def all_transform_modules() -> list[str]:
    found = pkgutil.walk_packages(transforms.__path__, prefix="transforms.")
    return sorted(["transforms", *(module.name for module in found)])


def test_transforms_modules_are_all_found():
    modules = all_transform_modules()
    assert {
        "transforms.cdc",
        "transforms.ehr_silver",
        "transforms.features.demographics",
        "transforms.identifiers",
        "transforms.quality",
        "transforms.reporting",
        "transforms.reporting.calendar",
    } <= set(modules)


def test_transforms_do_not_import_dagster():
    modules = all_transform_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "tops = {m.split('.')[0] for m in sys.modules}\n"
        # dagster_pipes is the one Dagster package a Databricks job may use.
        "print(sorted(t for t in tops if t.startswith('dagster') and t != 'dagster_pipes'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
