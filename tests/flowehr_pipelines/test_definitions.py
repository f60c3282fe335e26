"""The code location loads, and its catalogue is complete enough for the UI."""

from __future__ import annotations

import dagster as dg
import pytest

from flowehr_pipelines.automation.ehr import EHR_JOB
from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.automation.reporting import REPORTING_JOB
from flowehr_pipelines.definitions import defs
from tests.reporting_keys import (
    REPORTING_QUERY_KEYS,
    REPORTING_STAGING_KEYS,
    REPORTING_VIEW_KEYS,
)

EXPECTED_ASSET_KEYS = {
    "bronze/ehr/diagnoses",
    "bronze/ehr/lab_results",
    "bronze/ehr/observations",
    "bronze/ehr/patients",
    "bronze/ehr/visits",
    "bronze/transaction_history",
    "gold/features/lab_summaries",
    "gold/features/news2",
    "gold/features/outcomes",
    "gold/features/patient_demographics",
    "gold/features/vital_signs",
    "internal/reporting_housekeeping",
    "internal/feature_housekeeping",
    *REPORTING_STAGING_KEYS,
    *REPORTING_VIEW_KEYS,
    *REPORTING_QUERY_KEYS,
    "reports/completed_batch_report",
    "reports/completed_comms_report",
    "silver/ehr/diagnoses",
    "silver/ehr/lab_results",
    "silver/ehr/observations",
    "silver/ehr/patients",
    "silver/ehr/visits",
}
DOMAIN_GROUPS = {"ehr", "governance", "features", "reporting", "reports", "housekeeping", "sources"}


@pytest.fixture
def definitions() -> dg.Definitions:
    return defs()


def test_defs_load_with_the_expected_asset_keys(definitions: dg.Definitions) -> None:
    keys = {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert keys >= EXPECTED_ASSET_KEYS


def test_every_asset_has_a_description_a_domain_group_and_an_owner(
    definitions: dg.Definitions,
) -> None:
    for spec in definitions.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.description and len(spec.description) > 20, name
        assert spec.group_name in DOMAIN_GROUPS, name
        assert spec.owners, name
        assert spec.kinds, name


def test_jobs_resolve_and_run_in_process(definitions: dg.Definitions) -> None:
    for name in (ALL_ASSETS_JOB, EHR_JOB, REPORTING_JOB):
        job = definitions.resolve_job_def(name)
        assert job.executor_def.name == "in_process", name


def test_schedules_run_in_london_time(definitions: dg.Definitions) -> None:
    schedules = list(definitions.schedules or [])
    assert schedules
    for schedule in schedules:
        assert isinstance(schedule, dg.ScheduleDefinition)
        assert schedule.execution_timezone == "Europe/London", schedule.name
        assert schedule.description, schedule.name


def test_one_bronze_asset_per_configured_source_table(definitions: dg.Definitions) -> None:
    from flowehr_pipelines.config import load_settings

    settings = load_settings()
    keys = {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}
    for connection in settings.data_source_connections:
        for table in connection.tables:
            assert f"bronze/{connection.name}/{table.name}" in keys


def test_secrets_are_not_in_resource_config(definitions: dg.Definitions) -> None:
    from tests.conftest import TEST_KEY

    assert definitions.resources is not None
    for resource in definitions.resources.values():
        assert TEST_KEY not in repr(resource)


def test_every_asset_check_job_schedule_and_sensor_has_a_description(
    definitions: dg.Definitions,
) -> None:
    graph = definitions.resolve_asset_graph()
    for check_key in graph.asset_check_keys:
        assert graph.get_check_spec(check_key).description, check_key.to_user_string()
    for job in definitions.jobs or []:
        assert getattr(job, "description", None), job.name
    for schedule in definitions.schedules or []:
        assert getattr(schedule, "description", None), schedule.name
    for sensor in definitions.sensors or []:
        assert getattr(sensor, "description", None), sensor.name


def test_settings_are_loaded_once_per_code_location_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowehr_pipelines import definitions as module

    calls: list[int] = []
    real = module.load_settings

    def counting() -> object:
        calls.append(1)
        return real()

    monkeypatch.setattr(module, "load_settings", counting)
    module.defs()
    assert len(calls) == 1


def test_an_embedded_key_reaches_the_pseudonymiser_by_file_not_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import os

    from flowehr_pipelines.config import load_settings, local_key_file
    from flowehr_pipelines.deployment import build_resources
    from resources.pseudonymiser import PSEUDONYMISATION_KEY_ENV

    monkeypatch.setenv("FLOWEHR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(PSEUDONYMISATION_KEY_ENV)
    settings = load_settings()
    pseudonymiser = build_resources(settings)["pseudonymiser"]
    assert PSEUDONYMISATION_KEY_ENV not in os.environ
    key = local_key_file(settings).read_text().strip()
    assert key not in repr(pseudonymiser) and key not in str(pseudonymiser.key_file)
    assert pseudonymiser.key_bytes() == key.encode()
