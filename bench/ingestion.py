"""CDC ingestion against its DuckDB peer: the same landed files, the same run.

    python -m bench.ingestion OUT.json SCALE REPEAT

The landing files of a scale (``flowehr demo-data``'s CDC generator, seed 42) are
written once into ``bench/.data/ingestion-<scale>``. Each repetition ingests all of
them into a fresh lake with the product (``ingest_landing_files``: parse, quarantine,
two Delta commits) and into a fresh DuckDB file with the peer
(``bench/peer_ingestion.py``), timed one after the other in this process. The two
must agree, or the ratio means nothing: the same valid lines (file, line number,
SHA-256 of the line, timestamp and every date field), and the same quarantined lines
with the same first reason (up to its parenthesised detail, as the product counts
reasons).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench.data import DATA_ROOT, SCALES
from bench.measure import Measurement, summarise, time_call

VALID_KEY = ("_source_file", "_line_number", "_record_hash", "timestamp", "createddate",
             "completeddate", "sendinggroupcreateddate", "datesent")  # fmt: skip


def landing_files(scale: str) -> Path:
    """The lake root holding the scale's landing files, generated once."""
    from flowehr_pipelines.synthetic import write_cdc_landing

    spec = SCALES[scale]
    root = DATA_ROOT / f"ingestion-{scale}"
    marker = root / ".complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        write_cdc_landing(
            root / "landing",
            days=spec["days"],
            events_per_day=spec["events"] // spec["days"],
            start_date=date.today() - timedelta(days=spec["days"] - 1),
            seed=42,
        )
        marker.touch()
    return root


def _product(landing_root: Path, lake: Path, now: datetime) -> None:
    from assets.reporting.ingestion import ingest_landing_files
    from resources.delta.storage import LocalStorage
    from resources.delta.store import DeltaTableStore
    from resources.object_store import LocalObjectStore

    ingest_landing_files(
        objects=LocalObjectStore(root=str(landing_root)),
        delta=DeltaTableStore(storage=LocalStorage(root=str(lake))),
        now=now,
        log=logging.getLogger("bench"),  # type: ignore[arg-type]
    )


def _peer(landing_root: Path, database: Path, now: datetime) -> None:
    from bench.peer_duckdb import open_database
    from bench.peer_ingestion import ingest

    connection = open_database(database)
    try:
        ingest(connection, landing_root, now=now)
    finally:
        connection.close()


def _ms(value: Any) -> Any:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


def compare(lake: Path, database: Path) -> dict[str, Any]:
    """Row counts of both sides and whether their valid and quarantined lines agree."""
    import duckdb

    from resources.delta.storage import LocalStorage
    from resources.delta.store import DeltaTableStore

    delta = DeltaTableStore(storage=LocalStorage(root=str(lake)))
    ours_valid = delta.read(("bronze", "transaction_history"), columns=list(VALID_KEY))
    ours_bad = delta.read(
        ("bronze", "quarantine_transaction_history"),
        columns=["_source_file", "_line_number", "reason"],
    )
    connection = duckdb.connect(str(database), read_only=True)
    try:
        peer_valid = connection.execute(f"SELECT {', '.join(VALID_KEY)} FROM bronze").fetchall()
        peer_bad = connection.execute(
            "SELECT _source_file, _line_number, reason FROM quarantine"
        ).fetchall()
    finally:
        connection.close()
    valid = {tuple(_ms(r[k]) for k in VALID_KEY) for r in ours_valid.to_pylist()}
    other = {tuple(_ms(v) for v in row) for row in peer_valid}
    bad = {(r["_source_file"], r["_line_number"], r["reason"].split(" (")[0])
           for r in ours_bad.to_pylist()}  # fmt: skip
    other_bad = {(f, n, reason.split(" (")[0]) for f, n, reason in peer_bad}
    return {
        "rows": {
            "product": {"valid": ours_valid.num_rows, "quarantined": ours_bad.num_rows},
            "duckdb_peer": {"valid": len(peer_valid), "quarantined": len(peer_bad)},
        },
        "valid_agree": valid == other and ours_valid.num_rows == len(peer_valid),
        "quarantine_agree": bad == other_bad and ours_bad.num_rows == len(peer_bad),
        "only_product": sorted(map(str, (bad - other_bad)))[:5],
        "only_peer": sorted(map(str, (other_bad - bad)))[:5],
    }


def bench_ingestion(scale: str, repeat: int) -> dict[str, Any]:
    """Product and peer ingestion of all of a scale's landing files, ``repeat`` times."""
    landing_root = landing_files(scale)
    product: list[Measurement] = []
    peer: list[Measurement] = []
    agreement: dict[str, Any] = {}
    for i in range(repeat):
        work = DATA_ROOT / "runs" / f"ingestion-{scale}-{i}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        now = datetime.now(UTC)
        product.append(time_call(partial(_product, landing_root, work / "lake", now)))
        peer.append(time_call(partial(_peer, landing_root, work / "peer.duckdb", now)))
        agreement = compare(work / "lake", work / "peer.duckdb")
        shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        "files": len(list((landing_root / "landing").rglob("*.jsonl"))),
        "product": summarise(product),
        "duckdb_peer": summarise(peer),
        **agreement,
    }
    result["ratio"] = round(
        result["product"]["median_seconds"] / result["duckdb_peer"]["median_seconds"], 3
    )
    return result


if __name__ == "__main__":
    out, scale, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Path(out).write_text(json.dumps(bench_ingestion(scale, repeat), indent=2, default=str))
