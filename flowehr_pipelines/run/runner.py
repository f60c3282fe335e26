"""Materialise the asset graph and summarise what happened.

This is what ``flowehr run`` (and so ``make run``) does: the in-process executor, one
shared SparkSession, the graph's independent parts at the same time (``run_parts``),
every run recorded in the Dagster instance under ``DAGSTER_HOME`` so the runs also
show in the UI afterwards.

Before the run starts, the slow one-off costs its steps would otherwise pay in turn on
the critical path (the Spark JVM and first job, the Great Expectations import) are
started on background threads, so they overlap the Python-only ingestion steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.run.parts import (
    DEFAULT_CODE,
    PartProcess,
    concurrent_groups,
    execute_due_reports,
    execute_part,
    report_inputs,
    subset,
)
from flowehr_pipelines.run.skipping import (
    RunPlan,
    plan_run,
    save_cursor,
    settled_cursor,
    skipped_lines,
)
from flowehr_pipelines.run.warmup import (
    fixed_costs,
    start_slow_dependencies,
    wait_for_slow_dependencies,
)


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
    skipped: list[str] = field(default_factory=list)  # one line per reason
    # One-off costs outside any step (seconds): Dagster import and definitions load,
    # observing the sources, the Spark JVM start, the Great Expectations import.
    fixed_costs: dict[str, float] = field(default_factory=dict)


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
    concurrent: bool = True,
    code: str = DEFAULT_CODE,
    skip_unchanged: bool = False,
) -> RunSummary:
    """Execute the all-assets job (or a selection of it), its parts at the same time.

    The parts that need Spark run in this process; the other independent parts
    (``run_parts``) run at the same time in one child process that loads ``code``
    (where ``defs`` came from) and records its runs in the same instance. An ephemeral
    instance cannot be shared, so with one (or with ``concurrent`` off) the parts run
    here one after another. Then the
    partitioned report assets the job leaves out run: the report partitions due now,
    exactly as the report schedules would request them (one run per partition range),
    as soon as the part they read has succeeded.

    With ``skip_unchanged`` (``flowehr run`` without ``--all``) and no selection, only the
    assets whose inputs changed, whose code changed, that are due or missing run
    (``run.skipping``); the rest are listed as skipped with the reason.
    """
    keys = resolve_selection(defs, selection)
    job = defs.resolve_job_def(ALL_ASSETS_JOB)
    in_job = set(job.asset_layer.selected_asset_keys)
    main_keys = in_job if keys is None else {k for k in keys if k in in_job}
    plan: RunPlan | None = None
    if skip_unchanged and keys is None:
        plan = _plan(defs, instance, in_job)
        main_keys = plan.run
    if not main_keys:
        parts: list[set[dg.AssetKey]] = []
    elif concurrent and not instance.is_ephemeral:
        parts = concurrent_groups(job, main_keys)
    else:
        parts = [main_keys]
    # The part holding every input of the reports writes them once it has succeeded;
    # if no single part does (a selection of reports alone), they wait for the whole run.
    inputs = report_inputs(defs)
    report_part = next((i for i, part in enumerate(parts) if inputs <= part), None)

    run_ids: list[str] = []
    if parts:
        # Children first: this process starts threads (Spark, GX) only after.
        children = [
            PartProcess.start(
                part,
                instance=instance,
                selected=keys,
                with_reports=i == report_part,
                run_config=run_config,
                code=code,
            )
            for i, part in enumerate(parts)
            if i > 0
        ]
        start_slow_dependencies(defs, subset(job, parts[0]))
        try:
            run_ids += execute_part(
                defs,
                instance,
                parts[0],
                selected=keys,
                with_reports=report_part == 0,
                run_config=run_config,
            )
            for child in children:
                run_ids += child.wait()
        except BaseException:
            for child in children:
                child.stop()
            raise
        finally:
            # A run that failed before its Spark or GX steps must not exit mid-start.
            wait_for_slow_dependencies()
    summary = RunSummary(run_id="", success=True)
    for run_id in run_ids:
        _collect(summary, run_id, instance)
    if report_part is None and summary.success:
        for run_id in execute_due_reports(defs, instance, keys):
            _collect(summary, run_id, instance)
    summary.fixed_costs.update(fixed_costs())
    if plan is not None:
        summary.fixed_costs["observe sources, decide what runs"] = plan.seconds
        summary.skipped = skipped_lines(plan.skipped)
        if summary.success and plan.cursor is not None:
            save_cursor(instance, settled_cursor(instance, plan))
    return summary


def _plan(defs: dg.Definitions, instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> RunPlan:
    from flowehr_pipelines.config import load_settings

    settings = load_settings()
    opt_out = settings.governance.opt_out
    return plan_run(
        defs,
        instance,
        keys,
        timezone=settings.reporting.timezone,
        opt_out_cron=opt_out.refresh_cron if opt_out.source else None,
    )


def step_spans(entries: Iterable[dg.EventLogEntry]) -> list[tuple[str, float, float]]:
    """(step, start, end) wall-clock times of each finished step in a run's event log."""
    started: dict[str, float] = {}
    spans: list[tuple[str, float, float]] = []
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            start = started.pop(event.step_key, entry.timestamp)
            spans.append((event.step_key, start, entry.timestamp))
    return spans


def step_seconds(
    instance: dg.DagsterInstance, run_id: str, entries: Sequence[dg.EventLogEntry] | None = None
) -> dict[str, float]:
    """Seconds each step of a run took, from its event log (or entries already read)."""
    logged = instance.all_logs(run_id) if entries is None else entries
    return {step: end - start for step, start, end in step_spans(logged)}


def _collect(summary: RunSummary, run_id: str, instance: dg.DagsterInstance) -> None:
    """Add one run's materialisations, checks and failures to the summary, from its
    event log (the run may have been made by another process).

    A run over a partition range materialises each partition with the same metadata,
    so an asset is listed once per run and its report paths once.
    """
    if not summary.run_id:
        summary.run_id = run_id
    else:
        summary.extra_run_ids.append(run_id)
    run = instance.get_run_by_id(run_id)
    summary.success = summary.success and run is not None and run.is_success
    entries = instance.all_logs(run_id)
    timings = step_seconds(instance, run_id, entries)
    seen: set[str] = set()
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.step_materialization_data.materialization
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
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            assert isinstance(evaluation, dg.AssetCheckEvaluation)
            summary.checks.append(
                CheckOutcome(
                    asset=evaluation.asset_key.to_user_string(),
                    name=evaluation.check_name,
                    passed=evaluation.passed,
                    severity=evaluation.severity.value,
                )
            )
        elif event.is_step_failure and event.step_failure_data is not None:
            summary.failures.append(
                f"{event.step_key}: {root_cause(event.step_failure_data.error)}"
            )


def root_cause(error: Any) -> str:
    """The first line of the innermost error: the cause, not Dagster's "Error occurred while
    executing op" wrapper around it. Module paths are dropped from the exception's name."""
    if error is None:
        return "failed"
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = (error.message or "").strip().splitlines()
    first = lines[0] if lines else getattr(error, "cls_name", None) or "failed"
    name, sep, rest = first.partition(": ")
    if sep and "." in name and " " not in name:
        first = f"{name.rpartition('.')[2]}: {rest}"
    return first


def format_summary(summary: RunSummary) -> str:
    """A plain-text summary: tables and rows, checks, report files, failures."""
    more = f" (+{len(summary.extra_run_ids)} more run(s))" if summary.extra_run_ids else ""
    run = summary.run_id or "(nothing to run)"
    lines = [f"run {run}{more}: {'SUCCESS' if summary.success else 'FAILED'}", ""]
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
    if summary.skipped:
        lines.append("")
        lines.extend(summary.skipped)
    if summary.fixed_costs:
        lines.append("")
        lines.append("fixed costs (outside any step):")
        costs = summary.fixed_costs.items()
        lines.extend(f"  {name:<40} {seconds:>6.1f} s" for name, seconds in costs)
    if summary.failures:
        lines.append("")
        lines.append("failures:")
        lines.extend(f"  {failure}" for failure in summary.failures)
    return "\n".join(lines)
