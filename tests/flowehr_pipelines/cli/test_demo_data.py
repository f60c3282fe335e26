"""``flowehr demo-data --compress`` lands gzip files the ingestion reads."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from flowehr_pipelines.cli import main


def test_demo_data_compress_writes_gzip_landing_files(flowehr_env: Path) -> None:
    args = ["demo-data", "--patients", "5", "--days", "2", "--events-per-day", "40", "--compress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    landed = sorted((flowehr_env / "lake" / "landing").rglob("*"))
    files = [p for p in landed if p.is_file()]
    assert files and all(p.name.endswith(".jsonl.gz") for p in files)
    lines = [line for p in files for line in gzip.decompress(p.read_bytes()).splitlines()]
    records = [line for line in lines if b'"sk":"REQUEST_ITEM' in line]
    assert len(records) >= 0.9 * len(lines)
    assert json.loads(records[0])["timestamp"] > 0
    assert f"in {len(files)} files" in result.output
