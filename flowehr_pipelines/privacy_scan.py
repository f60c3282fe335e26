"""Scan the published zones for patient identifiers that must never reach them.

docs/CONTRACTS.md §1: ``gold/features``, ``reporting`` and ``reports`` never hold a raw NHS number,
name, full date of birth, full postcode or MRN. Column-name checks cannot prove that (a
free-text column can carry any of them), so the scan looks at values:

* **Known values.** The identifiers actually present in the sources (the EHR source's
  patients, the CDC landing files' ``nhsnumber``) are collected and every published cell
  is compared with them. This catches an identifier whatever its column is called.
* **Shapes.** Any 10-digit number in text that passes the NHS modulus-11 check (with or
  without spaces), and any full UK postcode, is reported even when the source does not
  hold it (a leak from somewhere else).

A date of birth is an ordinary date, so one report date that happens to equal somebody's
birthday is no leak: a column is reported for dates of birth only when at least half of
its distinct dates are source dates of birth.

Findings name the table or file, the column and the kind of identifier, never the value.
Hand-rolled (regular expressions and set look-ups over Arrow) because the identifier
lists come from this deployment's own sources, which no PII-detection library knows.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from transforms.identifiers import nhs_number_problem
from transforms.landing import LandingFileError, is_landing_file, landed_lines

if TYPE_CHECKING:
    from flowehr_pipelines.config import Settings
    from resources.delta.store import DeltaTableStore
    from resources.object_store import ObjectStore

PUBLISHED_PREFIXES: tuple[str, ...] = ("gold/features", "reporting", "reports")
TEXT_SUFFIXES = (".csv", ".json", ".jsonl", ".txt", ".md", ".html", ".htm", ".svg", ".tsv")
DOB_SHARE = 0.5
"""A column is a date-of-birth leak when this share of its distinct dates are DOBs."""

NHS_SHAPE = re.compile(r"(?<![0-9A-Za-z])(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?![0-9A-Za-z])")
POSTCODE_SHAPE = re.compile(
    r"(?<![A-Za-z0-9])([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})(?![A-Za-z0-9])"
)
ISO_DATE = re.compile(r"(?<![0-9])(\d{4}-\d{2}-\d{2})(?![0-9])")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")

# Source columns that hold each kind of identifier (any source table, any source).
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "nhs_number": ("nhs_number", "nhsnumber"),
    "mrn": ("mrn",),
    "given_name": ("given_name", "first_name", "forename"),
    "family_name": ("family_name", "last_name", "surname"),
    "date_of_birth": ("date_of_birth", "dob", "birth_date"),
    "postcode": ("postcode", "post_code"),
}


def _digits(value: str) -> str:
    return value.replace(" ", "").replace("-", "")


def _postcode(value: str) -> str:
    return re.sub(r"\s+", "", value).upper()


@dataclass
class KnownIdentifiers:
    """The identifier values found in the sources, normalised for comparison."""

    nhs_numbers: set[str] = field(default_factory=set)
    mrns: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    full_names: set[str] = field(default_factory=set)
    dates_of_birth: set[str] = field(default_factory=set)
    postcodes: set[str] = field(default_factory=set)

    def add(self, kind: str, value: Any) -> None:
        """Record one source value of a kind from ``SOURCE_COLUMNS``."""
        if value is None:
            return
        text = value.isoformat() if isinstance(value, date) else str(value).strip()
        if not text:
            return
        if kind == "nhs_number":
            digits = _digits(text)
            if len(digits) == 10 and digits.isdigit():
                self.nhs_numbers.add(digits)
        elif kind == "mrn":
            self.mrns.add(text.upper())
        elif kind in ("given_name", "family_name"):
            if len(text) > 1:
                self.names.add(text.lower())
        elif kind == "date_of_birth":
            self.dates_of_birth.add(text[:10])
        elif kind == "postcode":
            self.postcodes.add(_postcode(text))

    def add_full_name(self, given: Any, family: Any) -> None:
        if given and family:
            self.full_names.add(f"{str(given).strip()} {str(family).strip()}".lower())

    @property
    def count(self) -> int:
        return sum(
            len(s)
            for s in (self.nhs_numbers, self.mrns, self.names, self.dates_of_birth, self.postcodes)
        )


@dataclass(frozen=True)
class Finding:
    """An identifier of some kind in a published table or file column (never the value)."""

    location: str
    column: str
    kind: str
    cells: int

    def describe(self) -> str:
        return f"{self.location} column '{self.column}': {self.kind} in {self.cells:,} cell(s)"


@dataclass
class ScanResult:
    """Everything one scan looked at and found."""

    tables: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings


# -- scanning values --------------------------------------------------------------------


def _nhs_hits(text: str, known: KnownIdentifiers) -> bool:
    for match in NHS_SHAPE.finditer(text):
        digits = "".join(match.groups())
        if digits in known.nhs_numbers or nhs_number_problem(digits) is None:
            return True
    return False


def _postcode_hit(text: str, known: KnownIdentifiers) -> bool:
    upper = text.upper()
    if _postcode(upper) in known.postcodes:
        return True
    return POSTCODE_SHAPE.search(upper) is not None


def _name_hit(text: str, known: KnownIdentifiers) -> bool:
    lowered = " ".join(text.split()).lower()
    if lowered in known.names or lowered in known.full_names:
        return True
    return any(full in lowered for full in known.full_names)


def _mrn_hit(text: str, known: KnownIdentifiers) -> bool:
    upper = text.upper()
    if upper.strip() in known.mrns:
        return True
    return any(token in known.mrns for token in re.findall(r"[A-Z0-9]+", upper))


def scan_strings(values: Iterable[str], known: KnownIdentifiers) -> dict[str, int]:
    """Cells per identifier kind among some text values (dates of birth: see ``scan_dates``)."""
    counts: dict[str, int] = {}
    for value in values:
        for kind, hit in (
            ("NHS number", _nhs_hits),
            ("full postcode", _postcode_hit),
            ("name", _name_hit),
            ("MRN", _mrn_hit),
        ):
            if hit(value, known):
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def dob_column(dates: Iterable[str], known: KnownIdentifiers) -> int:
    """Matching cells when a column's dates look like dates of birth, else 0."""
    seen = [d for d in dates if d]
    distinct = set(seen)
    if not distinct or not known.dates_of_birth:
        return 0
    matched = distinct & known.dates_of_birth
    if len(matched) < DOB_SHARE * len(distinct):
        return 0
    return sum(1 for d in seen if d in matched)


def scan_column(name: str, column: pa.ChunkedArray, known: KnownIdentifiers) -> dict[str, int]:
    """Cells per identifier kind in one Arrow column."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        distinct = pc.unique(column.drop_null()).to_pylist()
        counts = scan_strings(distinct, known)
        dates = [m for v in distinct for m in ISO_DATE.findall(v)]
        dob = dob_column(dates, known)
        if dob:
            counts["full date of birth"] = dob
        return counts
    if pa.types.is_date(kind):
        dob = dob_column((d.isoformat() for d in column.drop_null().to_pylist()), known)
        return {"full date of birth": dob} if dob else {}
    if pa.types.is_integer(kind):
        values = {str(v) for v in pc.unique(column.drop_null()).to_pylist()}
        hits = len(values & known.nhs_numbers)
        return {"NHS number": hits} if hits else {}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_struct(kind):
        texts = [json.dumps(v, default=str) for v in column.drop_null().to_pylist()]
        return scan_strings(texts, known)
    return {}


def scan_table(location: str, table: pa.Table, known: KnownIdentifiers) -> list[Finding]:
    """Findings in every column of one table."""
    findings = []
    for name in table.column_names:
        for kind, cells in sorted(scan_column(name, table[name], known).items()):
            findings.append(Finding(location, name, kind, cells))
    return findings


def scan_text_file(location: str, data: bytes, known: KnownIdentifiers) -> list[Finding]:
    """Findings in a text file; CSV cells are reported by their header."""
    text = data.decode("utf-8", "replace")
    if location.endswith((".csv", ".tsv")):
        rows = list(csv.reader(io.StringIO(text), delimiter="\t" if ".tsv" in location else ","))
        if rows:
            header, body = rows[0], rows[1:]
            width = max([len(header), *(len(r) for r in body)])
            names = [*header, *(f"column {i + 1}" for i in range(len(header), width))]
            columns = {
                names[i]: pa.chunked_array([pa.array([r[i] for r in body if i < len(r)])])
                for i in range(width)
            }
            findings = scan_table(location, pa.table(columns), known) if body else []
            return findings + scan_table(location, pa.table({"(header)": header}), known)
    return scan_table(location, pa.table({"(text)": text.splitlines() or [""]}), known)


# -- walking the lake -------------------------------------------------------------------


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(f"{p}/") for p in prefixes)


def published_objects(
    objects: ObjectStore, prefixes: Sequence[str] = PUBLISHED_PREFIXES
) -> tuple[list[str], list[str]]:
    """Delta table roots and plain files under the published prefixes."""
    tables: set[str] = set()
    files: list[str] = []
    keys = [k for p in prefixes for k in objects.list_keys(p)]
    for key in keys:
        if "/_delta_log/" in key:
            tables.add(key.split("/_delta_log/")[0])
    for key in keys:
        if "/_delta_log/" in key or any(key.startswith(f"{t}/") for t in tables):
            continue
        files.append(key)
    return sorted(tables), sorted(files)


def scan_published(
    delta: DeltaTableStore,
    objects: ObjectStore,
    known: KnownIdentifiers,
    *,
    prefixes: Sequence[str] = PUBLISHED_PREFIXES,
) -> ScanResult:
    """Scan every Delta table (current version) and file under the published prefixes."""
    result = ScanResult()
    tables, files = published_objects(objects, prefixes)
    for table in tables:
        result.tables.append(table)
        data = delta.read(tuple(table.split("/")))
        result.findings.extend(scan_table(table, data, known))
    for key in files:
        lowered = key.lower()
        if lowered.endswith(".parquet"):
            import pyarrow.parquet as pq

            result.files.append(key)
            data = pq.read_table(pa.BufferReader(objects.read_bytes(key)))
            result.findings.extend(scan_table(key, data, known))
        elif lowered.endswith(TEXT_SUFFIXES):
            result.files.append(key)
            result.findings.extend(scan_text_file(key, objects.read_bytes(key), known))
        else:
            result.skipped_files.append(key)  # images: rendered charts, no text cells
    return result


# -- collecting the source identifiers ----------------------------------------------------


def collect_source_identifiers(settings: Settings, objects: ObjectStore) -> KnownIdentifiers:
    """Identifier values from every configured source table and the CDC landing files."""
    known = KnownIdentifiers()
    for connection in settings.data_source_connections:
        _collect_sql(settings, connection, known)
    for line in _landing_lines(objects):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            known.add("nhs_number", record.get("nhsnumber"))
    return known


def _collect_sql(settings: Settings, connection: Any, known: KnownIdentifiers) -> None:
    import sqlalchemy as sa

    from flowehr_pipelines.deployment import build_sql_source

    source = build_sql_source(settings, connection, direct=True)
    try:
        for table in connection.tables:
            reflected = source.reflect(table.name)
            wanted = {
                kind: [c for c in reflected.columns if c.name.lower() in names]
                for kind, names in SOURCE_COLUMNS.items()
            }
            columns = [c for cs in wanted.values() for c in cs]
            if not columns:
                continue
            with source.connect() as conn:
                for row in conn.execute(sa.select(*columns)).mappings():
                    for kind, cols in wanted.items():
                        for column in cols:
                            known.add(kind, row[column.name])
                    given = [row[c.name] for c in wanted["given_name"]]
                    family = [row[c.name] for c in wanted["family_name"]]
                    if given and family:
                        known.add_full_name(given[0], family[0])
    finally:
        source.engine.dispose()


def _landing_lines(objects: ObjectStore) -> Iterator[bytes]:
    """Every line of the landed files, gzip ones decompressed.

    A file that is gone or does not decompress was never ingested, so nothing of it can
    have been published: it adds no identifiers to look for.
    """
    for key in objects.list_keys("landing"):
        if is_landing_file(key) or key.endswith(".json"):
            try:
                yield from landed_lines(key, objects.read_bytes(key)).splitlines()
            except (FileNotFoundError, LandingFileError):
                continue
