"""Changes applied to an existing synthetic EHR source: updates, deletes and new rows with new
changelog numbers.
"""

from __future__ import annotations

import calendar
import math
import random
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowehr_pipelines.synthetic import names
from flowehr_pipelines.synthetic.ehr_schema import (
    DAY,
    ETHNICITY_NAMES,
    HOUR,
    NEW_PATIENT_LOOKBACK_DAYS,
    TABLES,
    iso_utc,
    parse_iso_utc,
)
from flowehr_pipelines.synthetic.ehr_source import SourceWriter


@dataclass(frozen=True)
class SourceChangeStats:
    """What :func:`apply_source_changes` did; row counts are summed over all tables.

    ``first_change_seq > last_change_seq`` means nothing changed.
    """

    updated: int
    deleted: int
    inserted: int
    first_change_seq: int
    last_change_seq: int


def _sampled_ids(rng: random.Random, max_id: int, fraction: float) -> Iterator[int]:
    """Ids in ``1..max_id``, each picked with probability ``fraction``, in ascending order.

    Geometric gaps make this O(picked) time and O(1) memory, unlike ``random.sample``
    over millions of ids.
    """
    if fraction <= 0 or max_id <= 0:
        return
    if fraction >= 1:
        yield from range(1, max_id + 1)
        return
    log_q = math.log1p(-fraction)
    current = 0
    while True:
        current += int(math.log(1.0 - rng.random()) / log_q) + 1
        if current > max_id:
            return
        yield current


def _chunks(ids: Iterator[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for value in ids:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _plausible_update(table: str, row: sqlite3.Row, rng: random.Random, now: int) -> dict[str, Any]:
    """The fields a real source would plausibly change on this row."""
    if table == "patients":
        roll = rng.random()
        if roll < 0.5:
            letters = names.POSTCODE_UNIT_LETTERS
            return {
                "postcode": f"{rng.choice(names.POSTCODE_DISTRICTS)} {rng.randrange(10)}"
                f"{rng.choice(letters)}{rng.choice(letters)}"
            }
        if roll < 0.75:
            return {"family_name": rng.choice(names.FAMILY_NAMES)}
        return {"ethnicity": rng.choice(ETHNICITY_NAMES)}
    if table == "visits":
        admitted = parse_iso_utc(row["admission_datetime"])
        if row["discharge_datetime"] is None and admitted < now:
            discharged = admitted + rng.randrange(max(1, now - admitted))
            roll = rng.random()
            disposition = "died" if roll < 0.03 else ("transfer" if roll < 0.1 else "home")
            return {"discharge_datetime": iso_utc(discharged), "discharge_disposition": disposition}
        return {"ward": rng.choice(names.WARDS)}
    if table == "observations":
        heart_rate = row["heart_rate"]
        corrected = 80 if heart_rate is None else max(30, heart_rate + rng.choice((-10, -5, 5, 10)))
        return {"heart_rate": corrected}
    if table == "lab_results":
        value = row["value"]
        return {"value": None if value is None else round(value * rng.uniform(0.9, 1.1), 1)}
    if table == "diagnoses":
        if rng.random() < 0.5:
            other_code, other_description, _ = rng.choice(names.DIAGNOSES)
            return {"icd10_code": other_code, "description": other_description}
        note = row["clinical_note"] or ""
        return {"clinical_note": f"{note} Addendum: reviewed by consultant, agree with plan."}
    raise ValueError(f"unknown table {table}")


def _metadata(conn: sqlite3.Connection) -> dict[str, str]:
    return {key: value for key, value in conn.execute("SELECT key, value FROM source_metadata")}


def _epoch_seconds(moment: datetime) -> int:
    """Whole epoch seconds; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return calendar.timegm(moment.timetuple())


def _default_now(meta: dict[str, str]) -> int:
    """One hour after the latest write recorded in the database: deterministic, unlike a clock."""
    stamps = [meta[key] for key in ("generated_at", "last_changes_at") if meta.get(key)]
    return max(parse_iso_utc(stamp) for stamp in stamps) + HOUR


def apply_source_changes(
    db_path: Path,
    *,
    seed: int,
    update_fraction: float = 0.01,
    delete_fraction: float = 0.001,
    new_patients: int = 0,
    now: datetime | None = None,
) -> SourceChangeStats:
    """Simulate source activity after a load: updates, tombstones and new patients.

    Every touched row gets ``updated_at = now`` and the next ``change_seq``, so an
    incremental load picks up exactly these rows. ``now`` defaults to one hour after
    the database's last recorded write, which keeps repeated calls deterministic.
    Runs in one SQLite transaction: a crash leaves the database as it was.
    """
    db_path = Path(db_path)
    if not db_path.exists():
        raise FileNotFoundError(db_path)
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        meta = _metadata(conn)
        last_seq = int(meta["last_change_seq"])
        now_ts = _default_now(meta) if now is None else _epoch_seconds(now)
        now_iso = iso_utc(now_ts)
        rng = random.Random(f"apply_source_changes:{seed}")  # nosec B311: synthetic demo data, not security
        seq = last_seq
        updated = deleted = 0

        for table, columns in TABLES.items():
            key = columns[0]
            (max_id,) = conn.execute(f"SELECT COALESCE(MAX({key}), 0) FROM {table}").fetchone()  # nosec B608: identifiers from code or validated config; values bound
            for chunk in _chunks(_sampled_ids(rng, max_id, update_fraction), 1_000):
                rows = conn.execute(
                    f"SELECT * FROM {table} WHERE is_deleted = 0 AND {key} IN "  # nosec B608: identifiers from code or validated config; values bound
                    f"({', '.join('?' * len(chunk))}) ORDER BY {key}",
                    chunk,
                ).fetchall()
                for row in rows:
                    changes = _plausible_update(table, row, rng, now_ts)
                    seq += 1
                    assignments = ", ".join(f"{column} = ?" for column in changes)
                    conn.execute(
                        f"UPDATE {table} SET {assignments}, updated_at = ?, change_seq = ? "  # nosec B608: identifiers from code or validated config; values bound
                        f"WHERE {key} = ?",
                        (*changes.values(), now_iso, seq, row[key]),
                    )
                    updated += 1

        for table, columns in TABLES.items():
            key = columns[0]
            (max_id,) = conn.execute(f"SELECT COALESCE(MAX({key}), 0) FROM {table}").fetchone()  # nosec B608: identifiers from code or validated config; values bound
            for chunk in _chunks(_sampled_ids(rng, max_id, delete_fraction), 1_000):
                live = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT {key} FROM {table} WHERE is_deleted = 0 AND {key} IN "  # nosec B608: identifiers from code or validated config; values bound
                        f"({', '.join('?' * len(chunk))}) ORDER BY {key}",
                        chunk,
                    )
                ]
                params: list[Sequence[Any]] = []
                for row_id in live:
                    seq += 1
                    params.append((now_iso, seq, row_id))
                conn.executemany(
                    f"UPDATE {table} SET is_deleted = 1, updated_at = ?, change_seq = ? "  # nosec B608: identifiers from code or validated config; values bound
                    f"WHERE {key} = ?",
                    params,
                )
                deleted += len(params)

        inserted = 0
        if new_patients > 0:
            next_ids = {}
            for table, columns in TABLES.items():
                (max_id,) = conn.execute(
                    f"SELECT COALESCE(MAX({columns[0]}), 0) FROM {table}"  # nosec B608: identifiers from code or validated config; values bound
                ).fetchone()
                next_ids[table] = max_id + 1
            writer = SourceWriter(
                conn,
                rng,
                seed=int(meta.get("seed", seed)),
                batch_size=10_000,
                next_change_seq=seq + 1,
                next_ids=next_ids,
                updated_at_override=now_iso,
            )
            for _ in range(new_patients):
                writer.patient(now_ts - NEW_PATIENT_LOOKBACK_DAYS * DAY, now_ts)
            writer.flush_all()
            seq = writer.last_change_seq
            inserted = sum(writer.counts.values())

        conn.executemany(
            "INSERT OR REPLACE INTO source_metadata (key, value) VALUES (?, ?)",
            [("last_change_seq", str(seq)), ("last_changes_at", now_iso)],
        )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    return SourceChangeStats(
        updated=updated,
        deleted=deleted,
        inserted=inserted,
        first_change_seq=last_seq + 1,
        last_change_seq=seq,
    )
