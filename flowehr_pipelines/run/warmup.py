"""Start what a run needs that is slow to start (the Spark JVM) in the background, before the
run reaches it, and time each start so the run summary shows it as a fixed cost of its own
rather than inside whichever step waited for it.

Nothing starts that the run's steps do not use: a run with no Spark asset (no ``spark``
kind, no ``spark`` resource) starts no JVM, and the Spark resource builds its session only
when a step first asks for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import dagster as dg

_costs: dict[str, float] = {}
_timers: list[threading.Thread] = []


def _time_in_background(name: str, wait: Callable[[], None]) -> None:
    """Record how long ``wait`` blocks from now: the background start's own duration."""
    started = time.perf_counter()

    def timer() -> None:
        wait()
        _costs[name] = time.perf_counter() - started

    thread = threading.Thread(target=timer, name=f"time-{name}", daemon=True)
    thread.start()
    _timers.append(thread)


def fixed_costs() -> dict[str, float]:
    """Seconds each background start of this process took (once finished), by name."""
    return dict(_costs)


def slow_dependencies(job: dg.JobDefinition) -> set[str]:
    """Which slow one-off dependencies the job's steps use: ``spark``, ``great_expectations``."""
    from assets.ehr.quality_checks import GX_CHECK_NAMES

    graph = job.asset_layer.asset_graph
    selected = set(job.asset_layer.selected_asset_keys)
    needed: set[str] = set()
    if uses_spark(job, selected):
        needed.add("spark")
    if any(c.name in GX_CHECK_NAMES and c.asset_key in selected for c in graph.asset_check_keys):
        needed.add("great_expectations")
    return needed


def start_slow_dependencies(defs: dg.Definitions, job: dg.JobDefinition) -> set[str]:
    """Start in the background what the job's steps will need, and say what was started.

    Only what the job uses is started, so a reporting-only run starts no JVM.
    """
    from assets.ehr.quality_checks import (
        import_great_expectations_in_background,
        wait_for_great_expectations_import,
    )
    from resources.spark import SparkResource, wait_for_background_start

    needed = slow_dependencies(job)
    spark = (defs.resources or {}).get("spark")
    if "spark" in needed and not isinstance(spark, SparkResource):
        needed.discard("spark")  # Spark runs elsewhere (Databricks) or not at all
    if "spark" in needed:
        assert isinstance(spark, SparkResource)
        spark.start_in_background()
        _time_in_background("Spark JVM start (background)", wait_for_background_start)
    if "great_expectations" in needed:
        # GX imports SQLAlchemy's ORM, and Dagster's run storage may import it on this thread
        # during the first step (one that does not touch SQLAlchemy itself, such as a FHIR
        # export): a module two threads initialise at once can be seen half-made.
        import sqlalchemy.orm  # noqa: F401

        import_great_expectations_in_background()
        _time_in_background(
            "Great Expectations import (background)", wait_for_great_expectations_import
        )
    return needed


def wait_for_slow_dependencies() -> None:
    """Let background starts finish (at once, when the run's steps already waited)."""
    from assets.ehr.quality_checks import wait_for_great_expectations_import
    from resources.spark import wait_for_background_start

    wait_for_background_start()
    wait_for_great_expectations_import()
    for timer in _timers:
        timer.join()


def uses_spark(job: dg.JobDefinition, keys: set[dg.AssetKey]) -> bool:
    """Whether any of these assets runs on Spark: the ``spark`` kind or resource."""
    graph = job.asset_layer.asset_graph
    for key in keys:
        assets_def = graph.get(key).assets_def
        if "spark" in assets_def.required_resource_keys:
            return True
        if "spark" in assets_def.specs_by_key[key].kinds:
            return True
    return False
