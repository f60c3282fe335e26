"""Write a fresh synthetic EHR source database, atomically (see ``ehr_source``)."""

from __future__ import annotations

import random
import sqlite3
from datetime import date
from pathlib import Path

from flowehr_pipelines.synthetic.ehr_schema import (
    DAY,
    INDEXES,
    SCHEMA,
    TABLES,
    EhrGenerationStats,
    epoch_of_day,
    iso_utc,
    replace_sqlite_file,
)
from flowehr_pipelines.synthetic.ehr_source import SourceWriter


def write_ehr_source(
    db_path: Path,
    *,
    patients: int,
    days: int,
    start_date: date,
    seed: int,
    batch_size: int = 10_000,
) -> EhrGenerationStats:
    """Write a fresh EHR source database covering ``[start_date, start_date + days)``.

    Replaces ``db_path`` atomically. The end of the period plays "now": visits still
    running then have no discharge.
    """
    if patients < 0 or days <= 0:
        raise ValueError("patients must be >= 0 and days > 0")
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = db_path.with_name(db_path.name + ".tmp")
    for stale in (tmp_path, tmp_path.with_name(tmp_path.name + "-journal")):
        if stale.exists():
            stale.unlink()

    period_start = epoch_of_day(start_date)
    period_end = period_start + days * DAY
    conn = sqlite3.connect(tmp_path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")  # a temp file: atomicity comes from os.replace
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(SCHEMA)
        writer = SourceWriter(
            conn,
            random.Random(seed),  # nosec B311: synthetic demo data, not security
            seed=seed,
            batch_size=batch_size,
            next_change_seq=1,
            next_ids=dict.fromkeys(TABLES, 1),
        )
        for _ in range(patients):
            writer.patient(period_start, period_end)
        writer.flush_all()
        for statement in INDEXES:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO source_metadata (key, value) VALUES (?, ?)",
            [
                ("last_change_seq", str(writer.last_change_seq)),
                ("seed", str(seed)),
                ("generated_at", iso_utc(period_end)),
                ("period_start", iso_utc(period_start)),
                ("period_end", iso_utc(period_end)),
            ],
        )
        conn.commit()
    except BaseException:
        conn.close()
        tmp_path.unlink(missing_ok=True)
        raise
    conn.close()
    replace_sqlite_file(tmp_path, db_path)
    return EhrGenerationStats(
        patients=writer.counts["patients"],
        visits=writer.counts["visits"],
        observations=writer.counts["observations"],
        lab_results=writer.counts["lab_results"],
        diagnoses=writer.counts["diagnoses"],
        invalid_nhs_numbers=writer.invalid_nhs_numbers,
        last_change_seq=writer.last_change_seq,
    )


# -- changes after a load -----------------------------------------------------------------
