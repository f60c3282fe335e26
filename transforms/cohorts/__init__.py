"""Cohorts: visits chosen by code lists, age and admission, as a training-set spine.

A cohort definition (YAML, see ``definitions/``) names code lists to include and
exclude, an age range at admission, an admission window and admission types, and
age bands (as ``patient_demographics`` writes them), which moment of the visit is the
index time (admission or discharge). Building it
over the published feature tables (``patient_demographics``, ``diagnoses``,
``outcomes``) gives one row per visit: ``visit_id``, ``person_key`` and
``event_time`` (the index time), ready for a training set.

``codes_known_by`` says which codes count: ``any`` (every code recorded so far, the
usual retrospective definition), ``discharge`` (recorded by the visit's discharge) or
``index`` (recorded by the index time, for a cohort a model could have selected at the
time). Where ``patient_demographics`` publishes a patient's age as its band only
(generalised to k-anonymity), an age range takes the visit when the whole band lies
inside it: ``age: {min: 18}`` loses no one, as 18 starts a band. Pure DuckDB over Arrow, so the
pipeline's asset and a researcher's laptop produce the same rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml

from transforms.codelists import CodeList, load_codelist, matches_sql

DEFINITIONS_DIR = Path(__file__).parent / "definitions"
COHORT_INPUTS: tuple[str, ...] = ("patient_demographics", "diagnoses", "outcomes")
COHORT_SCHEMA: tuple[tuple[str, str, str], ...] = (
    ("visit_id", "bigint", "Hospital visit in the cohort."),
    ("person_key", "string", "Pseudonymised patient (keyed HMAC-SHA256 of the NHS number)."),
    ("event_time", "timestamp", "Index time: the visit's admission or discharge, as defined."),
    ("admission_datetime", "timestamp", "When the visit began."),
    ("discharge_datetime", "timestamp", "When the visit ended; null while still admitted."),
    ("age_at_admission", "int", "Age in whole years at admission (from the birth year)."),
    ("admission_type", "string", "emergency or elective."),
)
"""The columns of every cohort: name, Spark SQL type, description."""
COHORT_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in COHORT_SCHEMA)
INDEX_TIMES = ("admission", "discharge")
KNOWN_BY = ("any", "discharge", "index")
_FIELDS = {
    "name",
    "description",
    "include",
    "exclude",
    "age",
    "age_bands",
    "admitted",
    "admission_types",
    "index",
    "codes_known_by",
}


@dataclass(frozen=True)
class CohortDefinition:
    """Who is in a cohort, and from when."""

    name: str
    description: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_age: int | None = None
    max_age: int | None = None
    age_bands: tuple[str, ...] = ()
    admitted_from: date | None = None
    admitted_to: date | None = None
    admission_types: tuple[str, ...] = ()
    index: Literal["admission", "discharge"] = "admission"
    codes_known_by: Literal["any", "discharge", "index"] = "any"

    def record(self) -> dict[str, Any]:
        """The definition in its YAML shape: what a manifest keeps, and parse_cohort reads."""
        return {
            "name": self.name,
            "description": self.description,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "age": {"min": self.min_age, "max": self.max_age},
            "age_bands": list(self.age_bands),
            "admitted": {
                "from": None if self.admitted_from is None else self.admitted_from.isoformat(),
                "to": None if self.admitted_to is None else self.admitted_to.isoformat(),
            },
            "admission_types": list(self.admission_types),
            "index": self.index,
            "codes_known_by": self.codes_known_by,
        }

    @property
    def sha256(self) -> str:
        """Hash of the canonical definition: equal definitions, equal hashes."""
        canonical = json.dumps(self.record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def codelists(self) -> dict[str, CodeList]:
        """Every code list it names, loaded and hash-checked, by reference."""
        return {ref: load_codelist(ref) for ref in (*self.include, *self.exclude)}


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"cohort {what} must be a name or a list of names")


def _age(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"cohort age.{key} must be a whole number of years")
    return value


def _bands(value: Any) -> tuple[str, ...]:
    """Age bands as the demographics table writes them: ``18-39``, ``80+``."""
    bands = _strings(value, "age_bands")
    for band in bands:
        if not re.fullmatch(r"[0-9]+(-[0-9]+|\+)", band):
            raise ValueError(f"cohort age_bands: '{band}' is not a band such as 18-39 or 80+")
    return bands


def _day(value: Any, key: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"cohort admitted.{key} must be a date (YYYY-MM-DD)") from None


def parse_cohort(data: Any) -> CohortDefinition:
    """A definition from its YAML data.

    Raises:
        ValueError: one line naming what is wrong (unknown key, bad value).
    """
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError("a cohort definition is a mapping with at least a 'name'")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(f"cohort {data['name']}: unknown key(s) {', '.join(unknown)}")
    age = data.get("age") or {}
    admitted = data.get("admitted") or {}
    if not isinstance(age, dict) or not isinstance(admitted, dict):
        raise ValueError("cohort age and admitted are mappings (min/max, from/to)")
    index = data.get("index", "admission")
    known_by = data.get("codes_known_by", "any")
    if index not in INDEX_TIMES:
        raise ValueError(f"cohort index must be one of {', '.join(INDEX_TIMES)}")
    if known_by not in KNOWN_BY:
        raise ValueError(f"cohort codes_known_by must be one of {', '.join(KNOWN_BY)}")
    definition = CohortDefinition(
        name=data["name"],
        description=str(data.get("description", "")),
        include=_strings(data.get("include"), "include"),
        exclude=_strings(data.get("exclude"), "exclude"),
        min_age=_age(age.get("min"), "min"),
        max_age=_age(age.get("max"), "max"),
        age_bands=_bands(data.get("age_bands")),
        admitted_from=_day(admitted.get("from"), "from"),
        admitted_to=_day(admitted.get("to"), "to"),
        admission_types=tuple(t.lower() for t in _strings(data.get("admission_types"), "types")),
        index=index,
        codes_known_by=known_by,
    )
    if definition.min_age is not None and definition.max_age is not None:
        if definition.min_age > definition.max_age:
            raise ValueError(f"cohort {definition.name}: age.min is above age.max")
    return definition


def load_cohort(source: str | Path) -> CohortDefinition:
    """A definition from a YAML file, or by name from ``definitions/``.

    Raises:
        FileNotFoundError: no such file or named definition.
        ValueError: the file is not a valid definition.
    """
    path = Path(source)
    if not path.suffix:
        path = DEFINITIONS_DIR / f"{source}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in DEFINITIONS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no cohort definition {source} (named ones: {known})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    return parse_cohort(data)


def named_definitions() -> dict[str, CohortDefinition]:
    """The definitions kept in the repository, by name (the pipeline builds these)."""
    definitions = (load_cohort(p) for p in sorted(DEFINITIONS_DIR.glob("*.yaml")))
    return {d.name: d for d in definitions}


def _code_condition(
    definition: CohortDefinition, codelists: dict[str, CodeList], refs: tuple[str, ...]
) -> str:
    """SQL: the visit ``i`` has a code in any of ``refs``, recorded in time."""
    lists = [codelists[ref] for ref in refs]
    for codelist in lists:
        if codelist.system != "icd10":
            raise ValueError(
                f"code list {codelist.reference} is {codelist.system}; the diagnoses table "
                "holds ICD-10 codes"
            )
    matched = " OR ".join(matches_sql("c.icd10_code", codelist) for codelist in lists)
    timing = {
        "any": "",
        "discharge": " AND c.known_at <= i.discharge_datetime",
        "index": " AND c.known_at <= i.event_time",
    }[definition.codes_known_by]
    return (
        f"EXISTS (SELECT 1 FROM diagnoses c WHERE c.visit_id = i.visit_id{timing} AND ({matched}))"  # nosec B608: identifiers from code or validated config; values bound
    )


def build_cohort(
    definition: CohortDefinition,
    codelists: dict[str, CodeList],
    tables: dict[str, pa.Table],
) -> pa.Table:
    """The cohort's visits, ordered by index time then visit.

    Args:
        definition: the cohort.
        codelists: the loaded code lists it names (:meth:`CohortDefinition.codelists`).
        tables: ``patient_demographics``, ``diagnoses`` and ``outcomes`` as Arrow.

    Returns:
        :data:`COHORT_COLUMNS`, one row per visit.
    """
    import duckdb

    missing = [name for name in COHORT_INPUTS if name not in tables]
    if missing:
        raise KeyError(f"a cohort needs the feature tables {', '.join(missing)}")
    filters = ["i.event_time IS NOT NULL"]
    if definition.min_age is not None:
        filters.append(f"COALESCE(i.age_at_admission, i.band_low) >= {definition.min_age}")
    if definition.max_age is not None:
        filters.append(
            f"(CASE WHEN i.age_at_admission IS NULL THEN i.band_high "
            f"ELSE i.age_at_admission END) <= {definition.max_age}"
        )
    if definition.age_bands:
        listed_bands = ", ".join(f"'{band}'" for band in definition.age_bands)
        filters.append(f"i.age_band IN ({listed_bands})")
    if definition.admitted_from is not None:
        filters.append(f"CAST(i.admission_datetime AS DATE) >= DATE '{definition.admitted_from}'")
    if definition.admitted_to is not None:
        filters.append(f"CAST(i.admission_datetime AS DATE) <= DATE '{definition.admitted_to}'")
    if definition.admission_types:
        listed = ", ".join("'" + t.replace("'", "''") + "'" for t in definition.admission_types)
        filters.append(f"lower(i.admission_type) IN ({listed})")
    if definition.include:
        filters.append(_code_condition(definition, codelists, definition.include))
    if definition.exclude:
        filters.append("NOT " + _code_condition(definition, codelists, definition.exclude))
    index = "d.horizon_datetime" if definition.index == "admission" else "o.discharge_datetime"
    # Identifiers come from code and validated definitions; the data are registered tables.
    query = f"""
        WITH i AS (
            SELECT d.visit_id, d.person_key, {index} AS event_time,
                   d.horizon_datetime AS admission_datetime, o.discharge_datetime,
                   d.age_at_admission, d.age_band, d.admission_type,
                   TRY_CAST(regexp_extract(d.age_band, '^([0-9]+)', 1) AS INTEGER) AS band_low,
                   TRY_CAST(regexp_extract(d.age_band, '-([0-9]+)$', 1) AS INTEGER) AS band_high
            FROM demographics d LEFT JOIN outcomes o ON o.visit_id = d.visit_id
        )
        SELECT {", ".join(f"i.{c}" for c in COHORT_COLUMNS)} FROM i
        WHERE {" AND ".join(filters)}
        ORDER BY i.event_time, i.visit_id
    """  # nosec B608: identifiers from code or validated config; values bound
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("demographics", tables["patient_demographics"])
        con.register("diagnoses", tables["diagnoses"])
        con.register("outcomes", tables["outcomes"])
        return con.sql(query).to_arrow_table()
    finally:
        con.close()
