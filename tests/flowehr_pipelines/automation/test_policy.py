"""Freshness policies, eager conditions and the automation condition sensor."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.automation.policy import (
    AUTOMATION_SENSOR,
    FEATURE_TABLES,
    REPORTING_TABLES,
    apply_automation_policy,
)
from flowehr_pipelines.config import Settings, load_settings
from flowehr_pipelines.definitions import defs

FEATURES = "gold/features/"
REPORTING = "reporting/"


@pytest.fixture
def definitions() -> dg.Definitions:
    return defs()


def _specs(definitions: dg.Definitions, prefix: str) -> list[dg.AssetSpec]:
    specs = [
        s
        for s in definitions.resolve_all_asset_specs()
        if s.key.to_user_string().startswith(prefix)
    ]
    assert specs, prefix
    return specs


def _window(policy: dg.FreshnessPolicy | None) -> tuple[timedelta | None, timedelta | None]:
    assert isinstance(policy, dg.FreshnessPolicy)
    fail = getattr(policy, "fail_window", None)
    warn = getattr(policy, "warn_window", None)
    return (
        None if warn is None else timedelta(seconds=warn.to_timedelta().total_seconds()),
        None if fail is None else timedelta(seconds=fail.to_timedelta().total_seconds()),
    )


def test_automation_policy_gives_every_feature_table_a_nightly_freshness_window(
    definitions: dg.Definitions,
) -> None:
    for spec in _specs(definitions, FEATURES):
        assert _window(spec.freshness_policy) == (None, timedelta(hours=26)), spec.key


def test_automation_policy_gives_every_reporting_table_the_cadence_windows(
    definitions: dg.Definitions,
) -> None:
    for spec in _specs(definitions, REPORTING):
        assert _window(spec.freshness_policy) == (timedelta(hours=2), timedelta(hours=8)), spec.key


@pytest.mark.parametrize("prefix", [FEATURES, REPORTING])
def test_automation_policy_makes_downstream_tables_eager(
    definitions: dg.Definitions, prefix: str
) -> None:
    for spec in _specs(definitions, prefix):
        assert spec.automation_condition is not None, spec.key
        assert spec.automation_condition.get_label() == "eager", spec.key


def test_automation_policy_leaves_sources_and_partitioned_reports_to_their_schedules(
    definitions: dg.Definitions,
) -> None:
    for spec in definitions.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        if not name.startswith((FEATURES, REPORTING)):
            assert spec.automation_condition is None, name
            assert spec.freshness_policy is None, name


def test_automation_sensor_targets_the_eager_tables_and_starts_stopped(
    definitions: dg.Definitions,
) -> None:
    repository = definitions.get_repository_def()
    sensors = {s.name: s for s in repository.sensor_defs}
    # One explicit sensor: Dagster adds no default (running) one beside it.
    assert "default_automation_condition_sensor" not in sensors
    sensor = sensors[AUTOMATION_SENSOR]
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.description
    graph = repository.asset_graph
    targeted = sensor.asset_selection.resolve(graph)
    assert targeted == (FEATURE_TABLES | REPORTING_TABLES).resolve(graph)
    assert {k.to_user_string() for k in targeted} == {
        s.key.to_user_string()
        for s in definitions.resolve_all_asset_specs()
        if s.automation_condition is not None
    }


def _small_defs() -> dg.Definitions:
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(["gold", "features", "f"]),
            dg.AssetSpec(["reporting", "r"]),
            dg.AssetSpec(["bronze", "b"]),
        ],
        can_subset=True,
    )
    def _tables():  # type: ignore[no-untyped-def]
        """Stand-ins for the code location's tables."""

    return dg.Definitions(assets=[_tables])


def _tuned(settings: Settings, **automation: object) -> Settings:
    return settings.model_copy(
        update={"automation": settings.automation.model_copy(update=automation)}
    )


def test_automation_policy_windows_and_switch_come_from_config() -> None:
    settings = _tuned(
        load_settings(),
        feature_fail_hours=30,
        feature_warn_hours=27,
        reporting_warn_hours=None,
        reporting_fail_hours=12,
        declarative_running=True,
    )
    applied = apply_automation_policy(_small_defs(), settings)
    specs = {s.key.to_user_string(): s for s in applied.resolve_all_asset_specs()}
    assert _window(specs["gold/features/f"].freshness_policy) == (
        timedelta(hours=27),
        timedelta(hours=30),
    )
    assert _window(specs["reporting/r"].freshness_policy) == (None, timedelta(hours=12))
    assert specs["bronze/b"].freshness_policy is None
    sensor = applied.get_repository_def().get_sensor_def(AUTOMATION_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_automation_policy_keeps_the_jobs_and_schedules(definitions: dg.Definitions) -> None:
    job = definitions.resolve_job_def(ALL_ASSETS_JOB)
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert any(k.startswith(FEATURES) for k in selected)
    assert any(k.startswith(REPORTING) for k in selected)
    assert job.executor_def.name == "in_process"
    names = {s.name for s in definitions.schedules or []}
    assert {"ehr_daily_schedule", "reporting_ingestion_schedule"} <= names
