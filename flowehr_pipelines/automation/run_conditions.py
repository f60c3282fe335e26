"""Which assets ``flowehr run`` materialises: automation conditions on data versions.

``flowehr run`` observes the observable sources (``assets.sources``: each source
table's newest change number, the landing files' names and sizes, the opt-out file),
then evaluates one condition per asset of the all-assets job with Dagster's
``evaluate_automation_conditions``, carrying the evaluation cursor from its previous
successful run. An asset runs when

- it was never materialised in this Dagster instance, or its latest run failed;
- an input's data version changed since the last evaluation (for an observable source:
  a new change number or landed file), or an input is requested in this evaluation;
- its code version changed;
- for the time-driven assets, their cron ticked (housekeeping nightly, the calendar
  view daily, an opt-out list held in a database table at its refresh cron);
- it reads nothing with a cheap version (a FHIR export): always.

An asset materialised since the last evaluation is not requested again for that update
(``since(newly_updated)``), so an unchanged rerun requests nothing; the runner evaluates
once more after a successful run (``run.skipping.settled_cursor``) so that run's
materialisations are taken in before the next observation.
The conditions are applied only to the definitions the runner evaluates; the code
location keeps its own (``automation.policy``).
"""

from collections.abc import Mapping

import dagster as dg

from assets.governance.opt_out import OPT_OUT_KEY

OBSERVE_SOURCES_JOB = "observe_sources_job"
HOUSEKEEPING_CRON = "0 2 * * *"  # as reporting_housekeeping_schedule
CALENDAR_CRON = "0 0 * * *"
HOUSEKEEPING = {
    dg.AssetKey(["internal", "reporting_housekeeping"]),
    dg.AssetKey(["internal", "feature_housekeeping"]),
}
CALENDAR = dg.AssetKey(["reporting", "views", "dates"])

AC = dg.AutomationCondition


def run_condition(*, follows_inputs: bool, cron: str | None, timezone: str) -> AC:
    """The condition of one asset: see the module docstring."""
    trigger = AC.code_version_changed()
    if follows_inputs:
        trigger = trigger | AC.any_deps_match(
            AC.data_version_changed() | AC.will_be_requested()
        ).with_label("an input changed")
    if cron:
        trigger = trigger | AC.cron_tick_passed(cron, timezone)
    # Materialised, not merely requested: an asset requested on an evaluation whose run
    # never materialised it (a cron tick seen after a run) still runs next time.
    handled = AC.newly_updated()
    return (
        trigger.since(handled) | AC.missing() | AC.execution_failed() | AC.initial_evaluation()
    ).with_label("flowehr run: changed, due or missing")


def always() -> AC:
    """For an asset whose input has no cheap version: run every time."""
    return (AC.missing() | ~AC.missing()).with_label("flowehr run: always")


def time_driven(opt_out_cron: str | None) -> Mapping[dg.AssetKey, str]:
    """The assets with a cron of their own, and the cron."""
    crons = {key: HOUSEKEEPING_CRON for key in HOUSEKEEPING}
    crons[CALENDAR] = CALENDAR_CRON
    if opt_out_cron:
        crons[OPT_OUT_KEY] = opt_out_cron
    return crons


def conditions_for(
    defs: dg.Definitions, keys: set[dg.AssetKey], *, timezone: str, opt_out_cron: str | None
) -> dict[dg.AssetKey, AC]:
    """A run condition for every asset of ``keys``."""
    graph = defs.resolve_asset_graph()
    crons = time_driven(opt_out_cron)
    conditions: dict[dg.AssetKey, AC] = {}
    for key in keys:
        parents = graph.get(key).parent_keys
        if key in HOUSEKEEPING:
            # Housekeeping compacts what changed since last night; its inputs changing is
            # what the nightly tick is for, not a reason to run now.
            conditions[key] = run_condition(
                follows_inputs=False, cron=crons[key], timezone=timezone
            )
        elif parents or key in crons:
            conditions[key] = run_condition(
                follows_inputs=True, cron=crons.get(key), timezone=timezone
            )
        else:
            conditions[key] = always()
    return conditions


def with_run_conditions(
    defs: dg.Definitions, keys: set[dg.AssetKey], *, timezone: str, opt_out_cron: str | None
) -> dg.Definitions:
    """The definitions with the run conditions on ``keys`` (for evaluation only)."""
    conditions = conditions_for(defs, keys, timezone=timezone, opt_out_cron=opt_out_cron)
    return defs.permissive_map_resolved_asset_specs(
        func=lambda spec: spec.replace_attributes(automation_condition=conditions[spec.key]),
        selection=dg.AssetSelection.assets(*keys),
    )
