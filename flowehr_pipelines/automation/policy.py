"""Freshness policies and declarative automation, applied across the code location.

Like DOP's root ``definitions.py``, the policy is cross-cutting: the domain modules
build their assets, and ``apply_automation_policy`` maps over the resolved asset specs
once, so no asset module carries freshness windows or automation conditions.

Freshness (``dg.FreshnessPolicy.time_window``, evaluated against the last
materialisation; windows from the ``automation`` settings):

| tables | warn | fail | why |
|---|---|---|---|
| ``gold/features/*`` | off | 26 h | the EHR job runs nightly at 03:00; 2 h of slack |
| ``reporting/*`` | 2 h | 8 h | NHS Notify cadence: hourly 08:00-18:00, then 01:00, 04:00 |

The reporting fail window is above the cadence's longest gap, 18:00 to 01:00 (7 h):
a 6 h window would fail every night between midnight and the 01:00 run.

Declarative automation: the same tables get ``AutomationCondition.eager()``, so they
materialise after their inputs update, whoever updated them (a hand-launched bronze
run, a source-sensor run of a subset, a run that stopped before the downstream).
``eager`` rather than ``on_cron``: the schedules already give the cadence, and
``eager`` adds no run when the schedule's job updated the input and the table together
(the table's own update handles the input's), nor while either is in progress, so it
only closes gaps. The partitioned reports keep their schedules: which days and batches
are due needs the planning in ``assets.reports``, which a condition cannot express.
``bronze/`` and ``silver/`` stay schedule- and sensor-driven (they read sources and
landing files, not assets).

One ``AutomationConditionSensorDefinition`` evaluates the conditions (so Dagster adds
no default sensor). It starts **stopped**, like the other automation, unless
``automation.declarative_running`` is set. Conditions do not affect job execution:
``flowehr run`` (the all-assets job in process) and the schedules run as before.
"""

from datetime import timedelta

import dagster as dg

from flowehr_pipelines.config import Settings

FEATURE_TABLES = dg.AssetSelection.key_prefixes(["gold", "features"])
REPORTING_TABLES = dg.AssetSelection.key_prefixes(["reporting"])
AUTOMATION_SENSOR = "downstream_automation_sensor"


def _hours(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(hours=value)


def feature_freshness(settings: Settings) -> dg.FreshnessPolicy:
    """The freshness window of a feature table (nightly refresh)."""
    automation = settings.automation
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=automation.feature_fail_hours),
        warn_window=_hours(automation.feature_warn_hours),
    )


def reporting_freshness(settings: Settings) -> dg.FreshnessPolicy:
    """The freshness window of a reporting staging table (NHS Notify cadence)."""
    automation = settings.automation
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=automation.reporting_fail_hours),
        warn_window=_hours(automation.reporting_warn_hours),
    )


def _with_policy(
    spec: dg.AssetSpec, freshness: dg.FreshnessPolicy, condition: dg.AutomationCondition
) -> dg.AssetSpec:
    # An asset that declares its own policy or condition keeps it.
    return spec.replace_attributes(
        freshness_policy=spec.freshness_policy or freshness,
        automation_condition=spec.automation_condition or condition,
    )


def build_automation_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the feature and reporting tables' conditions."""
    automation = settings.automation
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=FEATURE_TABLES | REPORTING_TABLES,
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if automation.declarative_running
            else dg.DefaultSensorStatus.STOPPED
        ),
        minimum_interval_seconds=automation.sensor_interval_seconds,
        run_tags={"flowehr/trigger": "automation_condition"},
        description="Materialises feature and reporting tables after their inputs update "
        "(eager), between the scheduled runs.",
    )


def apply_automation_policy(defs: dg.Definitions, settings: Settings) -> dg.Definitions:
    """Freshness policies and eager conditions on feature and reporting tables, plus the sensor.

    Args:
        defs: the code location's definitions, before the policy.
        settings: the ``automation`` windows and switch.

    Returns:
        The same definitions with the policy applied and the automation sensor added.
    """
    # The permissive variant, as DOP uses: the strict one is a preview API in 1.13 and
    # warns on every load.
    eager = dg.AutomationCondition.eager()
    features = feature_freshness(settings)
    reporting = reporting_freshness(settings)
    defs = defs.permissive_map_resolved_asset_specs(
        func=lambda spec: _with_policy(spec, features, eager), selection=FEATURE_TABLES
    )
    defs = defs.permissive_map_resolved_asset_specs(
        func=lambda spec: _with_policy(spec, reporting, eager), selection=REPORTING_TABLES
    )
    return dg.Definitions.merge(defs, dg.Definitions(sensors=[build_automation_sensor(settings)]))
