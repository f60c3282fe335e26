"""The privacy scan learns the CDC feed's NHS numbers from plain and gzip landing files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from flowehr_pipelines.privacy_scan import collect_source_identifiers
from tests.lakes import local_objects

DAY = "landing/transaction_history/__year=2026/__month=04/__day=01"


def _lines(*nhs_numbers: str) -> bytes:
    return "".join(json.dumps({"nhsnumber": n}) + "\n" for n in nhs_numbers).encode()


def test_nhs_numbers_are_collected_from_plain_and_gzip_landing_files(tmp_path: Path) -> None:
    objects = local_objects(tmp_path / "lake")
    objects.write_bytes(f"{DAY}/part-1.jsonl", _lines("9434765919"))
    objects.write_bytes(f"{DAY}/part-2.jsonl.gz", gzip.compress(_lines("9434765870")))
    # Never ingested, so never published: it adds nothing and stops nothing.
    objects.write_bytes(f"{DAY}/part-3.jsonl.gz", gzip.compress(_lines("4010232137"))[:-9])
    no_sources = cast(Any, SimpleNamespace(data_source_connections=[]))
    known = collect_source_identifiers(no_sources, objects)
    assert known.nhs_numbers == {"9434765919", "9434765870"}
