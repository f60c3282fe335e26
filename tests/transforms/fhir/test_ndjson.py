"""NDJSON from a Bulk Data export: what lands, what is quarantined, what fails the export."""

from __future__ import annotations

import json

import pytest

from transforms.fhir.ndjson import NdjsonError, parse_deleted, parse_errors, parse_output

TYPES = frozenset({"Patient", "Observation"})


def lines(*items: object) -> bytes:
    return "".join(json.dumps(i) + "\n" for i in items).encode()


def test_valid_resources_land_with_their_version_and_position() -> None:
    data = (
        b"\xef\xbb\xbf"
        + lines(
            {
                "resourceType": "Patient",
                "id": "1",
                "meta": {"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z"},
            },
            {"resourceType": "Patient", "id": "2"},
        )
        + b"\n"
    )
    parsed = parse_output(data, source_file="f", declared_type="Patient", accepted=TYPES)
    assert [(r.id, r.version_id, r.line_number) for r in parsed.landed] == [
        ("1", "3", 1),
        ("2", None, 2),
    ]
    assert parsed.rejected == []


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ([1, 2], "not a FHIR resource (no resourceType)"),
        ({"resourceType": "Condition", "id": "1"}, "a Condition in a file of Patient resources"),
        ({"resourceType": "Patient", "id": ""}, "Patient without an id"),
        (
            {"resourceType": "Patient", "id": "9", "birthDate": "1990-02-31x"},
            "invalid Patient: birthDate: ",
        ),
        ({"resourceType": "Patient", "id": "9", "shoeSize": 9}, "invalid Patient: shoeSize: "),
    ],
)
def test_bad_resources_are_quarantined_with_a_reason_and_the_raw_line(
    item: object, reason: str
) -> None:
    parsed = parse_output(lines(item), source_file="f", declared_type="Patient", accepted=TYPES)
    (bad,) = parsed.rejected
    assert bad.reason.startswith(reason)
    assert bad.raw == json.dumps(item) and len(bad.sha256) == 64


def test_a_type_the_source_does_not_land_is_quarantined() -> None:
    parsed = parse_output(
        lines({"resourceType": "Condition", "id": "1"}),
        source_file="f",
        declared_type=None,
        accepted=TYPES,
    )
    assert parsed.rejected[0].reason == "resource type Condition is not one this source lands"


def test_a_cut_short_file_fails_the_export() -> None:
    data = lines({"resourceType": "Patient", "id": "1"}) + b'{"resourceType": "Pat'
    with pytest.raises(
        NdjsonError, match=r"^f line 2 is not JSON \(.*\); the file looks cut short$"
    ):
        parse_output(data, source_file="f", declared_type="Patient", accepted=TYPES)
    with pytest.raises(NdjsonError, match="not UTF-8"):
        parse_output(b"\xff\xfe", source_file="f", declared_type="Patient", accepted=TYPES)


def test_deleted_bundles_become_tombstones() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": "Patient/7"}},
            {"request": {"method": "DELETE", "url": "Encounter/8"}},
        ],
    }
    bad = {"resourceType": "Bundle", "entry": [{"request": {"method": "PUT", "url": "Patient/1"}}]}
    parsed = parse_deleted(lines(bundle, bad), source_file="d", accepted=TYPES)
    assert [(t.resource_type, t.id) for t in parsed.tombstones] == [("Patient", "7")]
    assert parsed.rejected[0].reason == "a deleted Bundle entry without request DELETE Type/id"


def test_operation_outcomes_become_issues() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "fatal", "code": "exception", "diagnostics": "disk"}, {}],
    }
    parsed = parse_errors(lines(outcome, {"resourceType": "Patient"}), source_file="e")
    assert [(i.severity, i.code, i.diagnostics) for i in parsed.issues] == [
        ("fatal", "exception", "disk"),
        ("error", "unknown", ""),
    ]
    assert parsed.rejected[0].reason == "an error line that is not an OperationOutcome"
