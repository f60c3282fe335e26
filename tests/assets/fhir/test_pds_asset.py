"""PDS verification against the loopback PDS: outcomes only, applied by silver patients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.ehr.silver import SILVER_TABLES, build_silver_table_asset
from assets.fhir.pds import SCHEMA, build_pds_defs
from assets.fhir.settings import PdsSettings
from assets.keys import PDS_VERIFICATION, silver_key
from resources.delta.store import DeltaTableStore
from resources.pds import PdsResource
from resources.pseudonymiser import Pseudonymiser
from resources.spark import SparkResource
from tests.assets.ehr.test_silver_assets import load_bronze
from tests.assets.fhir.fhir_world import write_source
from tests.conftest import TEST_KEY
from tests.pds_server import API_KEY, KEY_ID, PdsServer, new_private_key, pds_server
from tests.resources.test_pds import nhs_number
from transforms.identifiers import hmac_sha256_hex, valid_nhs_number_digits

DEMOGRAPHICS = ("Smythe-Quintana", "Ariadne", "1931-07-14", "ZZ9 9ZZ", "Nowhere Lane")


def pds_client(server: PdsServer, key: str) -> PdsResource:
    return PdsResource(
        environment="integration",
        base_url=server.api_url,
        token_url=server.token_url,
        api_key=API_KEY,
        private_key=key,
        key_id=KEY_ID,
        backoff_seconds=0.01,
        requests_per_second=100.0,
    )


def run(store: DeltaTableStore, server: PdsServer, key: str, *, silver: bool) -> Any:
    assets = [build_pds_defs(settings=PdsSettings(enabled=True, environment="integration"))]
    resources: dict[str, Any] = {"delta": store, "pds": pds_client(server, key)}
    if silver:
        patients = next(t for t in SILVER_TABLES if t.name == "patients")
        assets.append(build_silver_table_asset(table=patients, extra_deps=[PDS_VERIFICATION]))
        resources["spark"] = SparkResource(
            master="local[1]", conf={"spark.sql.shuffle.partitions": "1"}
        )
        resources["pseudonymiser"] = Pseudonymiser(key=TEST_KEY)
    return dg.materialize(
        assets, resources=resources, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


@pytest.fixture
def world(tmp_path: Path, store: DeltaTableStore) -> Iterator[tuple[PdsServer, str, list[str]]]:
    load_bronze(write_source(tmp_path, patients=8, seed=4), store)
    numbers = sorted(
        {
            digits
            for value in store.read(("bronze", "ehr", "patients"))["nhs_number"].to_pylist()
            if (digits := valid_nhs_number_digits(value))
        }
    )
    key, jwks = new_private_key()
    with pds_server(jwks) as server:
        for number in numbers[4:]:
            server.add(number)
        server.add(numbers[0], current=nhs_number(77))
        server.add(numbers[1], restricted=True)
        server.add(numbers[2], deceased=True)
        server.throttle[numbers[5]] = 1
        yield server, key, numbers  # numbers[3] is unknown to PDS


def test_pds_outcomes_are_stored_without_demographics_and_used_by_silver(
    world: tuple[PdsServer, str, list[str]], store: DeltaTableStore
) -> None:
    server, key, numbers = world
    result = run(store, server, key, silver=True)
    assert result.success
    table = store.read(PDS_VERIFICATION.path)
    assert table.schema.names == SCHEMA.names
    rows = {r["nhs_number"]: r for r in table.to_pylist()}
    assert rows[numbers[0]]["outcome"] == "superseded"
    assert rows[numbers[0]]["superseded_by"] == nhs_number(77)
    assert rows[numbers[1]]["restricted"] and rows[numbers[1]]["outcome"] == "verified"
    assert rows[numbers[2]]["deceased"]
    assert rows[numbers[3]]["outcome"] == "not_found"
    assert {rows[n]["outcome"] for n in numbers[4:]} == {"verified"}
    logged = " ".join(str(e) for e in result.all_events)
    stored = str(table.to_pylist())
    assert server.tokens  # a token was issued and used, and appears nowhere
    for text in (*DEMOGRAPHICS, key[30:70], *server.tokens):
        assert text not in logged and text not in stored
    patients = store.read(silver_key("patients").path).to_pylist()
    keys = {p["person_key"] for p in patients}
    test_key = TEST_KEY.encode()
    assert hmac_sha256_hex(test_key, nhs_number(77)) in keys
    assert hmac_sha256_hex(test_key, numbers[0]) not in keys
    hidden = next(p for p in patients if p["person_key"] == hmac_sha256_hex(test_key, numbers[1]))
    assert hidden["postcode_district"] is None
    assert any(p["postcode_district"] for p in patients)


def test_fresh_outcomes_are_not_read_again_and_failed_reads_are_retried(
    world: tuple[PdsServer, str, list[str]], store: DeltaTableStore
) -> None:
    server, key, numbers = world
    server.throttle[numbers[6]] = 100  # PDS keeps refusing this one
    first = run(store, server, key, silver=False)
    assert not first.success
    (failure,) = [e for e in first.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description == (
        f"PDS: 1 of {len(numbers)} reads failed (HTTP 429); the {len(numbers) - 1} answered "
        "are stored, a rerun reads the rest"
    )
    assert numbers[6] not in store.read(PDS_VERIFICATION.path)["nhs_number"].to_pylist()
    server.throttle[numbers[6]] = 0
    reads = len(server.reads)
    assert run(store, server, key, silver=False).success
    assert server.reads[reads:] == [numbers[6]]
    assert store.read(PDS_VERIFICATION.path).num_rows == len(numbers)
