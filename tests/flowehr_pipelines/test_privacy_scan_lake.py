"""Identifiers in names: report object keys and Dagster's dynamic partition keys."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg

from assets.reports.writing import completed_batch_report_key, completed_comms_report_key
from flowehr_pipelines.privacy_scan import KnownIdentifiers
from flowehr_pipelines.privacy_scan_lake import (
    DYNAMIC_PARTITION_SETS,
    key_names,
    open_existing_instance,
    scan_names,
    scan_object_keys,
    scan_partition_keys,
)
from tests.lakes import local_objects

NHS = "9434765919"
CLIENTS, BATCHES = DYNAMIC_PARTITION_SETS


def known() -> KnownIdentifiers:
    out = KnownIdentifiers()
    out.add("nhs_number", NHS)
    out.add("family_name", "Featherstonehaugh")
    return out


def test_an_nhs_number_as_a_client_id_is_found_in_the_report_key_however_encoded():
    leaked = completed_comms_report_key("943 476 5919", date(2026, 4, 5))
    assert "943%20476%205919" in leaked  # percent-encoded on the way out
    clean = completed_comms_report_key("client-a", date(2026, 4, 5))
    [finding] = scan_object_keys("object keys under reports/", [leaked, clean], known())
    assert (finding.kind, finding.cells) == ("NHS number", 2)  # its directory and file name
    assert NHS not in finding.describe()
    assert scan_object_keys("k", [clean], known()) == []


def test_a_surname_as_a_batch_reference_is_a_whole_segment_finding():
    key = completed_batch_report_key("client-a", "r1", "featherstonehaugh")
    [finding] = scan_object_keys("k", [key], known())
    assert finding.kind == "name"


def test_delta_tables_are_scanned_by_directory_not_by_engine_made_file_names():
    keys = [
        "reporting/t/_delta_log/00000000000000000000.json",
        "reporting/t/created_date=2026-04-05/part-00000-9434765919.parquet",
    ]
    names = key_names(["reporting/t"], keys)
    assert names == ["reporting/t", "reporting/t/created_date=2026-04-05"]


def test_partition_keys_holding_identifiers_are_findings(tmp_path: Path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        instance.add_dynamic_partitions(CLIENTS, ["client-a", NHS])
        instance.add_dynamic_partitions(BATCHES, ["r1"])
        findings = scan_partition_keys(instance, known())
    assert [(f.location, f.kind, f.cells) for f in findings] == [
        (f"Dagster dynamic partitions '{CLIENTS}'", "NHS number", 1)
    ]


def test_the_scan_creates_no_instance_where_none_was(tmp_path: Path):
    home = tmp_path / "dagster_home"
    assert open_existing_instance(home) is None
    objects = local_objects(tmp_path / "lake")
    objects.write_bytes(completed_comms_report_key(NHS, date(2026, 4, 5)), b"a\n")
    findings = scan_names(objects, home, [], known())
    assert [(f.location, f.kind) for f in findings] == [
        ("object keys under reports/", "NHS number")
    ]
    assert not home.exists()
