"""Cohort assets: the cohort's visits published, its counts shown under disclosure control."""

from __future__ import annotations

import dagster as dg

from assets.features.cohorts import build_cohort_defs, cohort_key
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from tests.flowehr_pipelines.cli.test_features import write_cohort_lake
from transforms.cohorts import named_definitions
from transforms.disclosure import DISCLOSURE_RULE_PROPERTY, DisclosurePolicy


def test_cohort_counts_are_protected_and_the_rule_recorded_on_the_table() -> None:
    write_cohort_lake()
    delta = build_delta_store(load_settings())
    definition = named_definitions()["sepsis_adults"]
    (asset,) = build_cohort_defs(definition, DisclosurePolicy(method="midpoint6")).assets or []
    assert isinstance(asset, dg.AssetsDefinition)
    result = dg.materialize([asset], resources={"delta": delta})
    (event,) = result.get_asset_materialization_events()
    metadata = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    assert (metadata["visits"], metadata["people"]) == ("3", "3")  # one of each, as midpoint-6
    path = cohort_key("sepsis_adults").path
    assert delta.read(path).num_rows == 1
    rule = delta.table(path).metadata().configuration[DISCLOSURE_RULE_PROPERTY]
    assert DisclosurePolicy.decode(rule).method == "midpoint6"

    version = delta.version(path)
    assert dg.materialize([asset], resources={"delta": delta}).success
    assert delta.version(path) == version  # same rows and rule: nothing committed
