"""Small silver EHR tables for feature tests, as Arrow (for Delta) or Spark frames.

The schemas follow the silver contract: the columns part A's silver assets write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "patients": pa.schema(
        [
            ("patient_id", pa.int64()),
            ("person_key", pa.string()),
            ("birth_year", pa.int32()),
            ("sex", pa.string()),
            ("postcode_district", pa.string()),
            ("ethnicity", pa.string()),
            ("source_updated_at", TS),
            ("change_seq", pa.int64()),
        ]
    ),
    "visits": pa.schema(
        [
            ("visit_id", pa.int64()),
            ("patient_id", pa.int64()),
            ("person_key", pa.string()),
            ("admission_datetime", TS),
            ("discharge_datetime", TS),
            ("admission_type", pa.string()),
            ("ward", pa.string()),
            ("discharge_disposition", pa.string()),
            ("change_seq", pa.int64()),
        ]
    ),
    "observations": pa.schema(
        [
            ("observation_id", pa.int64()),
            ("visit_id", pa.int64()),
            ("person_key", pa.string()),
            ("observed_at", TS),
            ("charted_at", TS),
            ("respiratory_rate", pa.int64()),
            ("spo2", pa.int64()),
            ("on_supplemental_oxygen", pa.bool_()),
            ("temperature", pa.float64()),
            ("systolic_bp", pa.int64()),
            ("heart_rate", pa.int64()),
            ("consciousness", pa.string()),
            ("change_seq", pa.int64()),
        ]
    ),
    "lab_results": pa.schema(
        [
            ("lab_result_id", pa.int64()),
            ("visit_id", pa.int64()),
            ("person_key", pa.string()),
            ("collected_at", TS),
            ("resulted_at", TS),
            ("test_code", pa.string()),
            ("value", pa.float64()),
            ("unit", pa.string()),
            ("reference_low", pa.float64()),
            ("reference_high", pa.float64()),
            ("change_seq", pa.int64()),
        ]
    ),
    "diagnoses": pa.schema(
        [
            ("diagnosis_id", pa.int64()),
            ("visit_id", pa.int64()),
            ("person_key", pa.string()),
            ("icd10_code", pa.string()),
            ("description", pa.string()),
            ("recorded_at", TS),
            ("change_seq", pa.int64()),
        ]
    ),
}

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    """``T0`` plus some hours: timelines in tests read as offsets."""
    return T0 + timedelta(hours=hours)


def arrow(table: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    schema = SCHEMAS[table]
    full = [{name: row.get(name) for name in schema.names} for row in rows]
    return pa.Table.from_pylist(full, schema=schema)


def frame(spark: SparkSession, table: str, rows: Iterable[Mapping[str, Any]]) -> DataFrame:
    data = arrow(table, rows)
    if data.num_rows:
        return spark.createDataFrame(data)
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame([], from_arrow_schema(data.schema))


def obs(
    observation_id: int,
    visit_id: int,
    hours: float,
    *,
    seq: int | None = None,
    person_key: str = "p1",
    charted: float | None = None,
    **vitals: Any,
) -> dict[str, Any]:
    """An observation set with normal vitals unless overridden (NEWS2 total 0).

    ``charted`` is when it was entered (hours); ``None`` = as it was taken.
    """
    row: dict[str, Any] = {
        "observation_id": observation_id,
        "visit_id": visit_id,
        "person_key": person_key,
        "observed_at": at(hours),
        "charted_at": at(hours if charted is None else charted),
        "respiratory_rate": 16,
        "spo2": 97,
        "on_supplemental_oxygen": False,
        "temperature": 37.0,
        "systolic_bp": 120,
        "heart_rate": 70,
        "consciousness": "A",
        "change_seq": seq if seq is not None else 1000 + observation_id,
    }
    row.update(vitals)
    return row


def visit(
    visit_id: int,
    person_key: str,
    admit_hours: float,
    discharge_hours: float | None,
    *,
    disposition: str | None = "home",
    seq: int | None = None,
    patient_id: int = 1,
) -> dict[str, Any]:
    return {
        "visit_id": visit_id,
        "patient_id": patient_id,
        "person_key": person_key,
        "admission_datetime": at(admit_hours),
        "discharge_datetime": None if discharge_hours is None else at(discharge_hours),
        "admission_type": "emergency",
        "ward": "Acute Medicine",
        "discharge_disposition": disposition if discharge_hours is not None else None,
        "change_seq": seq if seq is not None else 100 + visit_id,
    }


def lab(
    lab_result_id: int,
    visit_id: int,
    hours: float,
    test_code: str,
    value: float | None,
    *,
    low: float,
    high: float,
    seq: int | None = None,
    person_key: str = "p1",
    resulted: float | None = None,
) -> dict[str, Any]:
    """A lab result; ``resulted`` is when it was reported (hours), ``None`` = at collection."""
    return {
        "lab_result_id": lab_result_id,
        "visit_id": visit_id,
        "person_key": person_key,
        "collected_at": at(hours),
        "resulted_at": at(hours if resulted is None else resulted),
        "test_code": test_code,
        "value": value,
        "unit": "u",
        "reference_low": low,
        "reference_high": high,
        "change_seq": seq if seq is not None else 5000 + lab_result_id,
    }


def diagnosis(
    diagnosis_id: int,
    visit_id: int,
    hours: float,
    code: str,
    *,
    seq: int | None = None,
    person_key: str = "p1",
) -> dict[str, Any]:
    """A coded diagnosis recorded ``hours`` after ``T0``."""
    return {
        "diagnosis_id": diagnosis_id,
        "visit_id": visit_id,
        "person_key": person_key,
        "icd10_code": code,
        "description": "",
        "recorded_at": at(hours),
        "change_seq": seq if seq is not None else 9000 + diagnosis_id,
    }


def patient(patient_id: int, person_key: str, *, seq: int | None = None, **fields: Any) -> dict:
    row = {
        "patient_id": patient_id,
        "person_key": person_key,
        "birth_year": 1950,
        "sex": "F",
        "postcode_district": "NW1",
        "ethnicity": "White British",
        "source_updated_at": T0,
        "change_seq": seq if seq is not None else patient_id,
    }
    row.update(fields)
    return row


def collect(df: DataFrame, *order_by: str) -> list[dict[str, Any]]:
    """Rows as dicts through Arrow, so timestamps stay UTC-aware whatever the local zone."""
    ordered = df.orderBy(*order_by) if order_by else df
    return ordered.toArrow().to_pylist()
