"""FHIR Bulk Data exports landed into bronze against a loopback server."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest

from assets.ehr.bronze_view import read_current
from assets.fhir.bronze import (
    EXPORT_ISSUES_CHECK,
    QUARANTINE_CHECK,
    build_fhir_source_defs,
    run_export,
)
from assets.fhir.landing import (
    WATERMARK,
    errors_table,
    quarantine_table,
    resource_table,
    stored_watermark,
)
from resources import progress
from resources.delta.store import DeltaTableStore
from tests.assets.fhir.fhir_world import TYPES, client, serve, source_settings, write_source
from tests.fhir_server import BulkServer, bulk_server
from transforms.fhir.ids import instant_micros


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BulkServer]:
    with bulk_server() as running:
        serve(running, write_source(tmp_path))
        yield running


def live(store: DeltaTableStore, kind: str) -> dict[str, dict[str, Any]]:
    current = read_current(store, resource_table("fhir", kind), ["id"])
    return {
        row["id"]: json.loads(row["resource"])
        for row in current.to_pylist()
        if not row["is_deleted"]
    }


def versions(store: DeltaTableStore) -> dict[str, int | None]:
    paths = [resource_table("fhir", k) for k in TYPES]
    paths += [quarantine_table("fhir"), errors_table("fhir")]
    return {"/".join(p): store.version(p) for p in paths}


def export(server: BulkServer, store: DeltaTableStore, **overrides: Any) -> Any:
    return run_export(source=source_settings(), client=client(server, **overrides), delta=store)


def kickoffs(server: BulkServer) -> list[str]:
    return [path for method, path, _ in server.requests if "$export" in path]


def test_full_export_lands_every_resource_and_stores_the_transaction_time(
    server: BulkServer, store: DeltaTableStore
) -> None:
    landing = export(server, store)
    for kind in TYPES:
        expected = {i for (k, i) in server.resources if k == kind}
        assert set(live(store, kind)) == expected and expected
        assert landing.landed[kind] == len(expected)
    mark = store.applied_version(resource_table("fhir", "Patient"), WATERMARK)
    assert mark == instant_micros(landing.transaction_time)
    assert stored_watermark(store, "fhir", TYPES) == landing.transaction_time.replace("Z", "") + (
        "Z"
    )
    assert "_since" not in kickoffs(server)[0]
    assert any(method == "DELETE" for method, _, _ in server.requests)  # job cleaned up


def test_an_export_logs_files_downloaded_and_parsed_and_types_landed(
    server: BulkServer, store: DeltaTableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "DEFAULT_INTERVAL_SECONDS", 0.0)  # a line per file
    messages: list[str] = []
    log = SimpleNamespace(info=messages.append)
    run_export(source=source_settings(), client=client(server), delta=store, log=log)  # type: ignore[arg-type]
    lines = [m for m in messages if m.startswith("progress bronze/fhir/fhir: ")]
    assert any(re.search(r"downloading, \d+ of \d+ files done", line) for line in lines)
    assert any("parsing, " in line and " resources/s" in line for line in lines)
    assert any(
        f"landing, {len(TYPES)} of {len(TYPES)} resource types done" in line for line in lines
    )


def test_second_export_fetches_only_changes_and_applies_deletions(
    server: BulkServer, store: DeltaTableStore
) -> None:
    first = export(server, store)
    patient = dict(server.resources[("Patient", "3")][0])
    patient["birthDate"] = "1960-01-02"
    server.put(patient)
    server.delete("Observation", "vs-5")
    served_before = len(server.files_served())
    second = export(server, store)
    assert "_since=" in kickoffs(server)[-1]
    assert second.since == first.transaction_time
    assert second.landed == {"Patient": 1, "Encounter": 0, "Observation": 0, "Condition": 0}
    assert second.deleted["Observation"] == 1
    assert len(server.files_served()) - served_before == 2  # Patient file and deletions
    assert live(store, "Patient")["3"]["birthDate"] == "1960-01-02"
    assert "vs-5" not in live(store, "Observation")
    assert stored_watermark(store, "fhir", TYPES) == second.transaction_time


def test_a_repeated_export_with_nothing_new_adds_no_rows(
    server: BulkServer, store: DeltaTableStore
) -> None:
    export(server, store)
    rows = {k: store.read(resource_table("fhir", k)).num_rows for k in TYPES}
    again = export(server, store)
    assert sum(again.landed.values()) == 0
    assert {k: store.read(resource_table("fhir", k)).num_rows for k in TYPES} == rows


def test_a_full_export_tombstones_resources_the_server_no_longer_has(
    server: BulkServer, store: DeltaTableStore, lake: Path
) -> None:
    export(server, store)
    server.resources.pop(("Condition", "2"))
    for kind in TYPES:  # the same rows without a watermark: the next export is a full one
        rows = store.read(resource_table("fhir", kind))
        shutil.rmtree(lake.joinpath(*resource_table("fhir", kind)))
        store.append(resource_table("fhir", kind), rows)
    assert stored_watermark(store, "fhir", TYPES) is None
    landing = export(server, store)
    assert landing.deleted["Condition"] == 1
    assert "2" not in live(store, "Condition")


def test_invalid_and_misplaced_resources_are_quarantined_with_reasons(
    server: BulkServer, store: DeltaTableStore
) -> None:
    server.knobs.extra_lines["Patient"] = [
        json.dumps({"resourceType": "Patient", "id": "bad1", "birthDate": "2020-13-45"}),
        json.dumps({"resourceType": "Observation", "id": "x9", "status": "final"}),
        json.dumps({"resourceType": "Patient", "gender": "male"}),
    ]
    landing = export(server, store)
    rows = {r["id"]: r for r in store.read(quarantine_table("fhir")).to_pylist()}
    assert rows["bad1"]["reason"].startswith("invalid Patient: birthDate: ")
    assert rows["x9"]["reason"] == "a Observation in a file of Patient resources"
    assert rows[None]["reason"] == "Patient without an id"
    assert all(r["raw"] and r["source_file"].endswith("Patient.ndjson") for r in rows.values())
    assert "2020-13-45" not in rows["bad1"]["reason"]  # reasons never quote values
    assert landing.quarantined == 3
    assert "bad1" not in live(store, "Patient")
    assert stored_watermark(store, "fhir", TYPES) == landing.transaction_time
    export(server, store)  # the same lines again are not quarantined twice
    assert store.read(quarantine_table("fhir")).num_rows == 3


def test_export_errors_and_quarantined_lines_are_kept_and_warn(
    server: BulkServer, store: DeltaTableStore, lake: Path
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "Observation/77 unreadable"},
            {"severity": "warning", "code": "informational", "diagnostics": "slow disk"},
        ],
    }
    server.knobs.errors = [outcome]
    server.knobs.extra_lines["Condition"] = [json.dumps({"resourceType": "Condition"})]
    source = source_settings()
    result = dg.materialize(
        [build_fhir_source_defs(source=source)],
        resources={"fhir_fhir": client(server), "delta": store},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    errors = store.read(errors_table("fhir")).to_pylist()
    assert sorted(e["severity"] for e in errors) == ["error", "warning"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks[EXPORT_ISSUES_CHECK]
    assert not check.passed
    assert check.metadata["issues_by_severity"].value == {"error": 1, "warning": 1}
    assert not checks[QUARANTINE_CHECK].passed
    assert checks[QUARANTINE_CHECK].metadata["quarantined_lines"].value == 1


def test_a_slow_export_is_polled_until_its_manifest_is_ready(
    server: BulkServer, store: DeltaTableStore
) -> None:
    server.knobs.slow_polls = 3
    landing = export(server, store)
    polls = [p for m, p, _ in server.requests if m == "GET" and "/status/" in p]
    assert len(polls) == 4
    assert landing.landed["Patient"] > 0


def test_an_export_that_outlasts_its_timeout_is_cancelled(
    server: BulkServer, store: DeltaTableStore
) -> None:
    server.knobs.slow_polls = 1000
    with pytest.raises(dg.Failure, match=r"still running after 0.2 s; cancelled"):
        export(server, store, export_timeout_seconds=0.2)
    assert any(m == "DELETE" for m, _, _ in server.requests)
    assert all(v is None for v in versions(store).values())


@pytest.mark.parametrize(
    ("knob", "message"),
    [
        ("truncate", r"Observation.ndjson line \d+ is not JSON .*cut short"),
        ("outside", r"file URL http://files.elsewhere.invalid is outside http://127.0.0.1"),
        ("fail", r"download of .*Encounter.ndjson failed: HTTP 500; nothing was committed"),
        ("broken", r"download of .*Observation.ndjson failed: (the connection broke|\d+ of)"),
        ("clock", r"transactionTime \S+ is not after the stored watermark \S+; nothing was"),
        ("time", r"the manifest at \S+ has no valid transactionTime \(an instant\)"),
    ],
)
def test_bad_exports_fail_in_one_line_and_commit_nothing(
    server: BulkServer, store: DeltaTableStore, knob: str, message: str
) -> None:
    first = export(server, store)
    before = versions(store)
    server.put(dict(server.resources[("Observation", "vs-1")][0]))
    server.put(dict(server.resources[("Encounter", "1")][0]))
    if knob == "truncate":
        server.knobs.truncate.add("Observation")
    elif knob == "outside":
        server.knobs.outside_host = True
    elif knob == "broken":
        server.knobs.broken.add("Observation")
    elif knob == "clock":
        server.knobs.clock_offset = -3_600_000_000
    elif knob == "time":
        server.knobs.transaction_text = "yesterday"
    else:
        server.knobs.failing_files["Encounter"] = 100
    with pytest.raises(dg.Failure) as failure:
        export(server, store)
    description = failure.value.description or ""
    assert "\n" not in description
    assert re.search(message, description)
    assert description.endswith(f"the watermark stays at {first.transaction_time}")
    assert versions(store) == before


def test_a_file_that_fails_once_is_fetched_again(
    server: BulkServer, store: DeltaTableStore
) -> None:
    server.knobs.failing_files["Patient"] = 1
    landing = export(server, store)
    assert landing.landed["Patient"] == len([k for k in server.resources if k[0] == "Patient"])


def test_files_requiring_a_token_get_the_bearer_token(
    server: BulkServer, store: DeltaTableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.knobs.token = "file-token-123"
    with pytest.raises(dg.Failure, match=r"kick-off at .* answered HTTP 401"):
        export(server, store)
    landing = export(server, store, auth="bearer", bearer_token="file-token-123")
    assert landing.landed["Patient"] > 0
    files = [h for m, p, h in server.requests if "/files/" in p]
    assert files and all(h.get("Authorization") == "Bearer file-token-123" for h in files)


def test_signed_file_urls_keep_their_signature_out_of_messages_and_tables(
    server: BulkServer, store: DeltaTableStore
) -> None:
    server.knobs.file_query = "?X-Amz-Signature=s3cr3tsig"
    server.knobs.extra_lines["Patient"] = [json.dumps({"resourceType": "Patient"})]
    export(server, store)
    assert "s3cr3tsig" not in str(store.read(resource_table("fhir", "Patient")).to_pylist())
    assert "s3cr3tsig" not in str(store.read(quarantine_table("fhir")).to_pylist())
    server.put(dict(server.resources[("Encounter", "1")][0]))
    server.knobs.failing_files["Encounter"] = 100
    with pytest.raises(dg.Failure) as failure:
        export(server, store)
    assert "Encounter.ndjson failed" in str(failure.value.description)
    assert "s3cr3tsig" not in str(failure.value.description)
