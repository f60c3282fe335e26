"""Materialise the asset graph in this process and summarise what happened.

This is what ``flowehr run`` (and so ``make run``) does: one run, the in-process
executor, one shared SparkSession, recorded in the Dagster instance under
``DAGSTER_HOME`` so the run also shows in the UI afterwards.

Before the run starts, the slow one-off costs its steps would otherwise pay in turn on
the critical path (the Spark JVM and first job, the Great Expectations import) are
started on background threads, so they overlap the Python-only ingestion steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from flowehr_pipelines.jobs import ALL_ASSETS_JOB

# The summary is the output; step-level DEBUG events stay in the event log and the UI.
QUIET_CONSOLE: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class AssetOutcome:
    """One materialised asset, as the summary shows it."""

    key: str
    rows: int | None
    metadata: dict[str, Any]
    seconds: float | None = None

    @property
    def rows_per_second(self) -> float | None:
        if not self.rows or not self.seconds:
            return None
        return self.rows / self.seconds


@dataclass
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    severity: str


@dataclass
class RunSummary:
    """Everything ``flowehr run`` prints."""

    run_id: str
    success: bool
    assets: list[AssetOutcome] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    report_paths: list[str] = field(default_factory=list)  # the first few of each asset
    report_count: int = 0
    failures: list[str] = field(default_factory=list)
    extra_run_ids: list[str] = field(default_factory=list)  # report partition runs


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def resolve_selection(defs: dg.Definitions, selection: str | None) -> list[dg.AssetKey] | None:
    """Asset keys for a Dagster selection string (``group:reporting``, ``key:bronze/*+``)."""
    if not selection:
        return None
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_string(selection).resolve(graph)
    if not keys:
        raise ValueError(f"selection '{selection}' matches no asset")
    return sorted(keys)


def run_assets(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    selection: str | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> RunSummary:
    """Execute the all-assets job (or a selection of it) in this process.

    Then, if it succeeded, the partitioned report assets it leaves out: the report
    partitions due now, exactly as the report schedules would request them (one run
    per partition range).
    """
    keys = resolve_selection(defs, selection)
    job = defs.resolve_job_def(ALL_ASSETS_JOB)
    in_job = set(job.asset_layer.selected_asset_keys)
    main_keys = None if keys is None else [k for k in keys if k in in_job]
    summary = RunSummary(run_id="", success=True)
    if main_keys:
        # Only the checks the job has for these assets (not, say, the watchdogs).
        wanted = set(main_keys)
        checks = {c for c in job.asset_layer.asset_graph.asset_check_keys if c.asset_key in wanted}
        job = job.get_subset(asset_selection=wanted, asset_check_selection=checks)
    if keys is None or main_keys:
        start_slow_dependencies(defs, job)
        try:
            result = job.execute_in_process(
                instance=instance,
                run_config={**QUIET_CONSOLE, **(run_config or {})},
                raise_on_error=False,
                tags={"flowehr/launched_by": "flowehr run"},
            )
        finally:
            # A run that failed before its Spark or GX steps must not exit mid-start.
            wait_for_slow_dependencies()
        _collect(summary, result, instance)
    if summary.success:
        for job_name, tags in _due_report_runs(defs, instance, keys):
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance,
                run_config=QUIET_CONSOLE,
                raise_on_error=False,
                tags={**tags, "flowehr/launched_by": "flowehr run"},
            )
            _collect(summary, result, instance)
    return summary


def slow_dependencies(job: dg.JobDefinition) -> set[str]:
    """Which slow one-off dependencies the job's steps use: ``spark``, ``great_expectations``."""
    from assets.quality_checks import GX_CHECK_NAMES

    graph = job.asset_layer.asset_graph
    selected = set(job.asset_layer.selected_asset_keys)
    needed: set[str] = set()
    if any("spark" in graph.get(key).assets_def.required_resource_keys for key in selected):
        needed.add("spark")
    if any(c.name in GX_CHECK_NAMES and c.asset_key in selected for c in graph.asset_check_keys):
        needed.add("great_expectations")
    return needed


def start_slow_dependencies(defs: dg.Definitions, job: dg.JobDefinition) -> set[str]:
    """Start in the background what the job's steps will need, and say what was started.

    Only what the job uses is started, so a reporting-only run starts no JVM.
    """
    from assets.quality_checks import import_great_expectations_in_background
    from resources.spark import SparkResource

    needed = slow_dependencies(job)
    spark = (defs.resources or {}).get("spark")
    if "spark" in needed and not isinstance(spark, SparkResource):
        needed.discard("spark")  # Spark runs elsewhere (Databricks) or not at all
    if "spark" in needed:
        assert isinstance(spark, SparkResource)
        spark.start_in_background()
    if "great_expectations" in needed:
        import_great_expectations_in_background()
    return needed


def wait_for_slow_dependencies() -> None:
    """Let background starts finish (at once, when the run's steps already waited)."""
    from assets.quality_checks import wait_for_great_expectations_import
    from resources.spark import wait_for_background_start

    wait_for_background_start()
    wait_for_great_expectations_import()


def _due_report_runs(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[dg.AssetKey] | None
) -> list[tuple[str, dict[str, str]]]:
    """(job, run tags) of the report partition ranges due now, as the schedules plan them."""
    from flowehr_pipelines.config import load_settings
    from flowehr_pipelines.reporting_automation import report_catch_up

    resources = defs.resources or {}
    if "delta" not in resources or "objects" not in resources:
        return []
    with dg.build_resources({"delta": resources["delta"], "objects": resources["objects"]}) as res:
        plans = report_catch_up(
            settings=load_settings(),
            instance=instance,
            delta=res.delta,
            objects=res.objects,
            selected=None if keys is None else set(keys),
        )
    return [(plan.job_name, dict(request.tags)) for plan in plans for request in plan.run_requests]


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds each step of a run took, from its event log."""
    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            spent[event.step_key] = entry.timestamp - started.get(event.step_key, entry.timestamp)
    return spent


def _collect(
    summary: RunSummary, result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance
) -> None:
    """Add one run's materialisations, checks and failures to the summary.

    A run over a partition range materialises each partition with the same metadata,
    so an asset is listed once per run and its report paths once.
    """
    if not summary.run_id:
        summary.run_id = result.run_id
    else:
        summary.extra_run_ids.append(result.run_id)
    summary.success = summary.success and result.success
    seen: set[str] = set()
    timings = step_seconds(instance, result.run_id)
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        assert materialization is not None
        key = materialization.asset_key.to_user_string()
        if key in seen:
            continue
        seen.add(key)
        metadata = {k: _plain(v) for k, v in materialization.metadata.items()}
        rows = metadata.get("dagster/row_count")
        seconds = timings.get(event.step_key) if event.step_key else None
        summary.assets.append(AssetOutcome(key, rows, metadata, seconds))
        summary.report_paths.extend(metadata.get("report_paths") or [])
        summary.report_count += int(metadata.get("reports_written") or 0) + int(
            metadata.get("reports_already_present") or 0
        )
    for evaluation in result.get_asset_check_evaluations():
        summary.checks.append(
            CheckOutcome(
                asset=evaluation.asset_key.to_user_string(),
                name=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
            )
        )
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            message = error.message.strip().splitlines()[0] if error else "failed"
            summary.failures.append(f"{event.step_key}: {message}")


def format_summary(summary: RunSummary) -> str:
    """A plain-text summary: tables and rows, checks, report files, failures."""
    more = f" (+{len(summary.extra_run_ids)} report run(s))" if summary.extra_run_ids else ""
    lines = [f"run {summary.run_id}{more}: {'SUCCESS' if summary.success else 'FAILED'}", ""]
    width = max((len(a.key) for a in summary.assets), default=5)
    # A multi-asset step (one source's bronze tables) reports its time on every asset.
    lines.append(f"{'asset'.ljust(width)}  {'rows':>10}  {'step s':>7}  {'rows/s':>9}")
    for asset in sorted(summary.assets, key=lambda a: a.key):
        rows = "-" if asset.rows is None else f"{asset.rows:,}"
        seconds = "-" if asset.seconds is None else f"{asset.seconds:.1f}"
        rate = "-" if asset.rows_per_second is None else f"{asset.rows_per_second:,.0f}"
        lines.append(f"{asset.key.ljust(width)}  {rows:>10}  {seconds:>7}  {rate:>9}")
    if summary.checks:
        lines.append("")
        passed = sum(c.passed for c in summary.checks)
        lines.append(f"checks: {passed} passed, {len(summary.checks) - passed} failed")
        for check in sorted(summary.checks, key=lambda c: (c.asset, c.name)):
            status = "PASS" if check.passed else f"FAIL ({check.severity})"
            lines.append(f"  {status:<12} {check.asset} {check.name}")
    if summary.report_paths:
        total = max(summary.report_count, len(summary.report_paths))
        lines.append("")
        lines.append(f"reports ({total:,}):")
        lines.extend(f"  {path}" for path in summary.report_paths)
        if total > len(summary.report_paths):
            lines.append(f"  ... and {total - len(summary.report_paths):,} more")
    if summary.failures:
        lines.append("")
        lines.append("failures:")
        lines.extend(f"  {failure}" for failure in summary.failures)
    return "\n".join(lines)
