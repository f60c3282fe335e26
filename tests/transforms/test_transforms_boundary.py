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


# What Spark Connect and Databricks shared/serverless compute forbid: the JVM behind the
# session (SparkContext, RDDs, py4j handles) and Python UDFs closing over driver state.
CLASSIC_ONLY_ATTRIBUTES = frozenset({"sparkContext", "rdd", "_jvm", "_jsc", "_jdf", "_sc"})
CLASSIC_ONLY_NAMES = frozenset({"SparkContext", "udf", "pandas_udf", "RDD"})


def classic_only_uses(source: str) -> list[str]:
    """Attributes and names in ``source`` that exist only on a classic (JVM) session."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in CLASSIC_ONLY_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in CLASSIC_ONLY_NAMES:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.alias) and node.name.split(".")[-1] in CLASSIC_ONLY_NAMES:
            found.append(f"import {node.name}")
    return found


def test_classic_only_spark_apis_are_caught() -> None:
    source = (
        "sc = spark.sparkContext\nrows = df.rdd.map(f)\nfrom pyspark.sql.functions import udf\n"
    )
    assert sorted(classic_only_uses(source)) == [
        "import udf",
        "line 1: .sparkContext",
        "line 2: .rdd",
    ]


def test_transforms_run_unchanged_on_spark_connect_and_databricks() -> None:
    """No transform touches the JVM behind the session, so the same code runs on a local
    session, a standalone cluster, Spark Connect and Databricks serverless."""
    from pathlib import Path

    root = Path(transforms.__path__[0])
    offences = {
        str(path.relative_to(root.parent)): uses
        for path in sorted(root.rglob("*.py"))
        if (uses := classic_only_uses(path.read_text(encoding="utf-8")))
    }
    assert offences == {}
