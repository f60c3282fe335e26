"""Start what a run needs that is slow to start (the Spark JVM) in the background, before the
run reaches it.
"""

from __future__ import annotations

import dagster as dg


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
    from assets.ehr.quality_checks import import_great_expectations_in_background
    from resources.spark import SparkResource

    needed = slow_dependencies(job)
    spark = (defs.resources or {}).get("spark")
    if "spark" in needed and not isinstance(spark, SparkResource):
        needed.discard("spark")  # Spark runs elsewhere (Databricks) or not at all
    if "spark" in needed:
        assert isinstance(spark, SparkResource)
        spark.start_in_background()
    if "great_expectations" in needed:
        # GX imports SQLAlchemy's ORM, and Dagster's run storage may import it on this thread
        # during the first step (one that does not touch SQLAlchemy itself, such as a FHIR
        # export): a module two threads initialise at once can be seen half-made.
        import sqlalchemy.orm  # noqa: F401

        import_great_expectations_in_background()
    return needed


def wait_for_slow_dependencies() -> None:
    """Let background starts finish (at once, when the run's steps already waited)."""
    from assets.ehr.quality_checks import wait_for_great_expectations_import
    from resources.spark import wait_for_background_start

    wait_for_background_start()
    wait_for_great_expectations_import()


def uses_spark(job: dg.JobDefinition, keys: set[dg.AssetKey]) -> bool:
    """Whether any of these assets needs the ``spark`` resource."""
    graph = job.asset_layer.asset_graph
    return any("spark" in graph.get(key).assets_def.required_resource_keys for key in keys)
