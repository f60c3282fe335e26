"""The DuckDB peer of CDC ingestion: landed JSON lines to bronze and quarantine in SQL.

What a DuckDB user would write to land the same files: read every line with its file
and line number, type the fields against explicit column types, and apply the same
validation rules as the product's quarantine (``transforms.cdc.to_record``), in the
same order, so each bad line gets the same first reason. Valid rows go to a bronze
table and invalid lines to a quarantine table, in a DuckDB database file.

``read_json`` with explicit columns is not used directly: with ``ignore_errors`` it
drops or nulls a bad line without saying which line or why, and without it one bad
line fails the whole read; a quarantine row needs both. So the peer reads lines
(``read_text``), checks them with ``json_valid``, and extracts every field with one
``json_extract`` per line. Not covered: non-UTF-8 lines, lone surrogates and a
byte-order mark (absent from the generated feed), and ``_extra``, the JSON of the
fields the schema lacks (``templates`` on ~2% of generated lines): the peer does not
build it and the comparison leaves it out.

Bench only: the bar the product's ingestion is measured against, not product code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from transforms.cdc import (
    DATE_FIELDS,
    EARLIEST_DATE_MS,
    EARLIEST_TIMESTAMP_MS,
    FUTURE_TOLERANCE_MS,
    INT_FIELDS,
    LIST_FIELDS,
    MAX_LINE_BYTES,
    MAX_QUARANTINED_LINE_CHARS,
    SK_PREFIXES,
    STRING_FIELDS,
)

FIELDS = ("sk", "timestamp", *STRING_FIELDS, *DATE_FIELDS, *LIST_FIELDS, *INT_FIELDS)
# JSON types as Python names them in the product's reasons.
PY_TYPE = (
    "CASE {t} WHEN 'VARCHAR' THEN 'str' WHEN 'UBIGINT' THEN 'int' WHEN 'BIGINT' THEN 'int' "
    "WHEN 'DOUBLE' THEN 'float' WHEN 'BOOLEAN' THEN 'bool' WHEN 'ARRAY' THEN 'list' "
    "WHEN 'OBJECT' THEN 'dict' ELSE 'NoneType' END"
)


def _v(name: str) -> str:
    return f"v[{FIELDS.index(name) + 1}]"


def _t(name: str) -> str:
    """The JSON type of a field; a missing field and JSON null are both 'NULL'."""
    return f"coalesce(json_type({_v(name)}), 'NULL')"


def _text(name: str) -> str:
    return f"json_extract_string({_v(name)}, '$')"


def _date_ms(name: str) -> str:
    return f"epoch_ms(TRY_CAST(nullif({_text(name)}, '') AS TIMESTAMPTZ))"


def _reason_checks(now_ms: int) -> list[tuple[str, str]]:
    """(condition, reason) in the order ``to_record`` checks them: the first one wins."""
    prefixes = " OR ".join(f"starts_with({_text('sk')}, '{p}')" for p in SK_PREFIXES)
    latest = now_ms + FUTURE_TOLERANCE_MS
    checks: list[tuple[str, str]] = [
        ("kind <> 'OBJECT'", f"'line is JSON ' || {PY_TYPE.format(t='kind')} || ', not an object'"),
        ("len(keys) <> len(list_distinct(keys))", "'a field appears more than once in the object'"),
        (f"{_t('sk')} = 'NULL'", "'sk is missing'"),
        (f"{_t('sk')} <> 'VARCHAR' OR NOT ({prefixes})", "'sk does not start with a known prefix'"),
        (f"{_t('timestamp')} = 'NULL'", "'timestamp is missing'"),
        (
            f"{_t('timestamp')} NOT IN ('UBIGINT', 'BIGINT')",
            "'timestamp must be whole epoch milliseconds, got ' || "
            + PY_TYPE.format(t=_t("timestamp")),
        ),
        (f"{_text('timestamp')}::HUGEINT < {EARLIEST_TIMESTAMP_MS}", "'timestamp is before 2015'"),
        (f"{_text('timestamp')}::HUGEINT > {latest}", "'timestamp is in the future'"),
    ]
    for name in STRING_FIELDS:
        checks.append(
            (
                f"{_t(name)} IN ('BOOLEAN', 'ARRAY', 'OBJECT')",
                f"'{name} must be text, got ' || {PY_TYPE.format(t=_t(name))}",
            )
        )
        checks.append((f"contains({_text(name)}, chr(0))", f"'{name} contains a NUL character'"))
    for name in DATE_FIELDS:
        given = f"{_t(name)} <> 'NULL' AND {_text(name)} <> ''"
        checks.append(
            (
                f"{_t(name)} NOT IN ('NULL', 'VARCHAR')",
                f"'{name} must be an ISO 8601 string, got ' || {PY_TYPE.format(t=_t(name))}",
            )
        )
        checks.append(
            (f"{given} AND {_date_ms(name)} IS NULL", f"'{name} is not an ISO 8601 date-time'")
        )
    for name in DATE_FIELDS:
        checks.append((f"{_date_ms(name)} < {EARLIEST_DATE_MS}", f"'{name} is before 2000'"))
        checks.append((f"{_date_ms(name)} > {latest}", f"'{name} is in the future'"))
    checks.append(
        (
            f"{_date_ms('completeddate')} < {_date_ms('createddate')}",
            "'completeddate is before createddate'",
        )
    )
    for name in LIST_FIELDS:
        items = f"json_extract({_v(name)}, '$[*]')"
        not_text = f"NOT list_bool_and(list_transform({items}, lambda x: json_type(x) = 'VARCHAR'))"
        checks.append(
            (f"{_t(name)} NOT IN ('NULL', 'ARRAY') OR ({_t(name)} = 'ARRAY' AND {not_text})",
             f"'{name} must be a list of text'")
        )  # fmt: skip
        has_nul = "lambda x: contains(json_extract_string(x, '$'), chr(0))"
        nul = f"list_bool_or(list_transform({items}, {has_nul}))"
        checks.append((f"{_t(name)} = 'ARRAY' AND {nul}", f"'{name} contains a NUL character'"))
    for name in INT_FIELDS:
        digits = f"regexp_full_match({_text(name)}, '[0-9]+')"
        checks.append(
            (
                f"{_t(name)} NOT IN ('NULL', 'UBIGINT', 'BIGINT') "
                f"AND NOT ({_t(name)} = 'VARCHAR' AND {digits})",
                f"'{name} must be a whole number'",
            )
        )
    return checks


def ingest(connection: duckdb.DuckDBPyConnection, lake_root: Path, *, now: datetime) -> None:
    """Every ``*.jsonl`` under the lake's landing prefix into ``bronze`` and ``quarantine``."""
    now_ms = int(now.timestamp() * 1000)
    root = str(lake_root).rstrip("/") + "/"
    pattern = f"{root}landing/transaction_history/**/*.jsonl"
    received = now.astimezone(UTC).date().isoformat()
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE lines AS
        WITH files AS (
            SELECT filename, string_split(content, chr(10)) AS parts
            FROM read_text('{pattern}')
        ), numbered AS (
            SELECT filename, unnest(parts) AS raw, generate_subscripts(parts, 1) AS n
            FROM files
        )
        SELECT replace(filename, '{root}', '') AS _source_file, n::BIGINT AS _line_number,
               rtrim(raw, chr(13)) AS line
        FROM numbered WHERE trim(rtrim(raw, chr(13))) <> ''
    """)
    paths = ", ".join(f"'$.{name}'" for name in FIELDS)
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE parsed AS
        SELECT _source_file, _line_number, line, json_type(line) AS kind,
               json_keys(line) AS keys, json_extract(line, [{paths}]) AS v
        FROM lines WHERE strlen(line) <= {MAX_LINE_BYTES} AND json_valid(line)
    """)
    reason = "CASE " + " ".join(
        f"WHEN {condition} THEN {text}" for condition, text in _reason_checks(now_ms)
    )
    columns = [f"{_text(name)} AS {name}" for name in STRING_FIELDS]
    columns.append(f"{_text('timestamp')}::BIGINT AS timestamp")
    columns += [f"make_timestamptz({_date_ms(name)} * 1000) AS {name}" for name in DATE_FIELDS]
    columns += [f"json_extract({_v(name)}, '$')::VARCHAR[] AS {name}" for name in LIST_FIELDS]
    columns += [f"{_text(name)}::BIGINT AS {name}" for name in INT_FIELDS]
    landing_day = (
        "coalesce(TRY_CAST(regexp_replace(regexp_extract(_source_file, "
        "'__year=(\\d{4})/__month=(\\d{1,2})/__day=(\\d{1,2})/', ['y', 'm', 'd'])::VARCHAR, "
        "'.*y: (\\d+), m: (\\d+), d: (\\d+).*', '\\1-\\2-\\3') AS DATE)::VARCHAR, "
        f"'{received}')"
    )
    connection.execute(f"""
        CREATE OR REPLACE TEMP TABLE checked AS
        SELECT *, {reason} END AS reason FROM parsed
    """)
    connection.execute(f"""
        CREATE OR REPLACE TABLE bronze AS
        SELECT {", ".join(columns)}, sha256(line) AS _record_hash, _source_file, _line_number,
               strftime(make_timestamptz({_text("timestamp")}::BIGINT * 1000), '%Y-%m-%d')
                   AS change_date,
               {landing_day} AS landing_date
        FROM checked WHERE reason IS NULL
    """)
    connection.execute(f"""
        CREATE OR REPLACE TABLE quarantine AS
        SELECT _source_file, _line_number, reason,
               left(line, {MAX_QUARANTINED_LINE_CHARS}) AS raw_line
        FROM checked WHERE reason IS NOT NULL
        UNION ALL
        SELECT _source_file, _line_number,
               CASE WHEN strlen(line) > {MAX_LINE_BYTES}
                    THEN 'line is longer than {MAX_LINE_BYTES} bytes' ELSE 'not valid JSON' END,
               left(line, {MAX_QUARANTINED_LINE_CHARS})
        FROM lines WHERE strlen(line) > {MAX_LINE_BYTES} OR NOT json_valid(line)
    """)
