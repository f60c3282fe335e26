"""How far k-anonymity generalises the published demographics, and what it costs.

    python -m bench.generalisation <ehr.db> [k] [repeat]

Reads the embedded EHR source that ``flowehr demo-data`` wrote, derives the demographics
rows as silver and the feature build do (birth year, postcode district, one row per
visit; the patient's NHS number stands in for its pseudonym, the counts are the same),
then times ``generalise_to_k`` on a local Spark session ``repeat`` times and reports the
median, the patients at each level and the k-anonymity measure before and after.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import time
from typing import Any

import pyarrow as pa

from transforms.features.demographics import (
    AGE_BANDS,
    DEMOGRAPHICS_LADDER,
    QUASI_IDENTIFIERS,
)
from transforms.features.generalise import LEVEL_COLUMN, generalise_to_k
from transforms.k_anonymity import measure_k_anonymity


def band(age: int) -> str:
    return next(
        label for low, high, label in AGE_BANDS if age >= low and (high is None or age <= high)
    )


def demographics_rows(database: str) -> pa.Table:
    """One row per visit with the published quasi-identifiers, as recorded."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT v.visit_id, p.nhs_number, substr(v.admission_datetime, 1, 4), "
            "substr(p.date_of_birth, 1, 4), p.sex, p.postcode, p.ethnicity "
            "FROM visits v JOIN patients p ON p.patient_id = v.patient_id "
            "WHERE v.is_deleted = 0 AND p.is_deleted = 0"
        ).fetchall()
    finally:
        connection.close()
    out: list[dict[str, Any]] = []
    for visit_id, person, admitted, born, sex, postcode, ethnicity in rows:
        if not (str(admitted).isdigit() and str(born).isdigit()) or int(born) > int(admitted):
            continue  # silver quarantines a malformed or future birth date
        age = int(admitted) - int(born)
        compact = (postcode or "").replace(" ", "").upper()
        out.append(
            {
                "visit_id": visit_id,
                "person_key": person,
                "age_at_admission": age,
                "age_band": band(age),
                "sex": sex,
                "postcode_district": compact[:-3] or None,
                "ethnicity": ethnicity,
            }
        )
    return pa.Table.from_pylist(out)


def main() -> None:
    database = sys.argv[1]
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    recorded = demographics_rows(database)
    before = measure_k_anonymity(recorded, QUASI_IDENTIFIERS, k=k)
    frame = spark.createDataFrame(recorded)
    seconds = []
    published = None
    for _ in range(repeat):
        start = time.perf_counter()
        published = generalise_to_k(
            frame, k=k, quasi_identifiers=QUASI_IDENTIFIERS, ladder=DEMOGRAPHICS_LADDER
        ).toArrow()
        seconds.append(time.perf_counter() - start)
    assert published is not None
    after = measure_k_anonymity(published, QUASI_IDENTIFIERS, k=k)
    people_by_level: dict[int, set[str]] = {}
    for person, level in zip(
        published.column("person_key").to_pylist(),
        published.column(LEVEL_COLUMN).to_pylist(),
        strict=True,
    ):
        people_by_level.setdefault(level, set()).add(person)
    report = {
        "k": k,
        "visits": recorded.num_rows,
        "patients": before.people,
        "before": {"smallest_class": before.smallest_class, "below_k": before.people_below_k},
        "after": {
            "smallest_class": after.smallest_class,
            "below_k": after.people_below_k,
            "withheld": after.people_withheld,
        },
        "patients_by_level": {lvl: len(p) for lvl, p in sorted(people_by_level.items())},
        "seconds": [round(s, 2) for s in seconds],
        "median_seconds": round(statistics.median(seconds), 2),
    }
    print(json.dumps(report, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
