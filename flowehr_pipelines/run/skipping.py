"""Decide what a ``flowehr run`` of the whole graph must materialise, and what it skips.

The observable sources are observed first (one cheap data version per outside input),
then the run conditions (``automation.run_conditions``) are evaluated with Dagster's
``evaluate_automation_conditions`` against the instance's event log. The evaluation
cursor is Dagster's own record of what each condition saw; it is kept beside the
instance (``flowehr_run_cursor`` in its root directory) and replaced only after a run
that succeeded, so a failed or killed run is decided again from the same point next time.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from flowehr_pipelines.automation.run_conditions import (
    HOUSEKEEPING,
    OBSERVE_SOURCES_JOB,
    time_driven,
    with_run_conditions,
)

CURSOR_FILE = "flowehr_run_cursor"
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunPlan:
    """What to materialise, what is skipped (with why), and the cursor to keep after."""

    run: set[dg.AssetKey]
    skipped: dict[dg.AssetKey, str] = field(default_factory=dict)
    cursor: Any = None  # Dagster's evaluation cursor, kept after a successful run
    seconds: float = 0.0
    conditioned: dg.Definitions | None = None  # the definitions the conditions are on


def _cursor_path(instance: dg.DagsterInstance) -> Path:
    return Path(instance.root_directory) / CURSOR_FILE


def load_cursor(instance: dg.DagsterInstance) -> Any:
    """The cursor of the last successful run's evaluation (None: none, or unreadable)."""
    path = _cursor_path(instance)
    if not path.exists():
        return None
    try:
        return dg.deserialize_value(path.read_text(encoding="utf-8"))
    except Exception:  # an older Dagster's cursor: decide afresh (everything runs)
        return None


def save_cursor(instance: dg.DagsterInstance, cursor: Any) -> None:
    """Keep the cursor for the next run (written whole or not at all)."""
    path = _cursor_path(instance)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(dg.serialize_value(cursor), encoding="utf-8")
    os.replace(temporary, path)


def _why_skipped(instance: dg.DagsterInstance, key: dg.AssetKey, time_driven: bool) -> str:
    latest = instance.get_latest_materialization_event(key)
    since = f"run {latest.run_id[:8]}" if latest is not None else "the last run"
    return f"not due since {since}" if time_driven else f"inputs unchanged since {since}"


def plan_run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    keys: set[dg.AssetKey],
    *,
    timezone: str,
    opt_out_cron: str | None,
) -> RunPlan:
    """Observe the sources, evaluate the run conditions, and split ``keys`` into what runs
    and what is skipped. If the observation fails, everything runs."""
    started = time.perf_counter()
    observed = defs.resolve_job_def(OBSERVE_SOURCES_JOB).execute_in_process(
        instance=instance,
        run_config=QUIET,
        raise_on_error=False,
        tags={"flowehr/launched_by": "flowehr run"},
    )
    if not observed.success:
        return RunPlan(run=set(keys), seconds=time.perf_counter() - started)
    conditioned = with_run_conditions(defs, keys, timezone=timezone, opt_out_cron=opt_out_cron)
    result = dg.evaluate_automation_conditions(
        defs=conditioned,
        instance=instance,
        asset_selection=dg.AssetSelection.assets(*keys),
        cursor=load_cursor(instance),
    )
    run = {key for key in keys if result.get_num_requested(key)}
    crons = set(time_driven(opt_out_cron)) | HOUSEKEEPING
    skipped = {key: _why_skipped(instance, key, key in crons) for key in keys - run}
    return RunPlan(
        run=run,
        skipped=skipped,
        cursor=result.cursor,
        seconds=time.perf_counter() - started,
        conditioned=conditioned,
    )


def settled_cursor(instance: dg.DagsterInstance, plan: RunPlan) -> Any:
    """The cursor to keep after a successful run: one more evaluation, with no new
    observation, so that the run's own materialisations are taken in before the next
    run observes the sources.

    Without it, the next run's evaluation would see the last run's materialisations
    (the conditions' reset) and a source changed since (their trigger) on the same
    evaluation, and the change would be missed until the source changed again.
    """
    if plan.conditioned is None or plan.cursor is None:
        return plan.cursor
    result = dg.evaluate_automation_conditions(
        defs=plan.conditioned,
        instance=instance,
        asset_selection=dg.AssetSelection.assets(*plan.run, *plan.skipped),
        cursor=plan.cursor,
    )
    return result.cursor


def skipped_lines(skipped: dict[dg.AssetKey, str]) -> list[str]:
    """One line per reason: ``skipped 41 assets: inputs unchanged since run 1a2b3c4d``."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in skipped.items():
        by_reason.setdefault(reason, []).append(key.to_user_string())
    lines = []
    for reason, keys in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
        shown = ", ".join(sorted(keys)[:3]) + (", ..." if len(keys) > 3 else "")
        lines.append(f"skipped {len(keys)} asset(s): {reason} ({shown})")
    return lines
