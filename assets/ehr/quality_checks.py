"""Great Expectations 1.x data-quality checks on bronze and silver tables.

``dagster-ge`` does not support GX 1.x, so each check here is a plain
``@dg.asset_check`` that reads only the columns it needs from Delta, validates them
with a suite from ``transforms.expectations`` and maps the outcome to an
``AssetCheckResult``: counts always, a few failing values only for value columns
(never for keys, NHS numbers or pseudonyms, because the UI shows check metadata).

Factories build the checks from config and from the silver table specs, so every
table gets the same checks without copied code:

* keys unique and not null: ERROR and blocking, so a broken key stops downstream;
* NHS number validity in bronze: WARN, because silver quarantines invalid ones;
  bronze checks judge each table's current rows (``assets.ehr.bronze_view``), not
  the rows later changelog loads have superseded;
* plausible (physiological) ranges in silver: ERROR;
* freshness of silver event tables: WARN.

Great Expectations takes seconds to import. ``flowehr run`` starts that import on a
background thread when the run has GX checks (``import_great_expectations_in_background``)
so it overlaps the ingestion steps; each check waits for it before touching GX.
"""

import importlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from assets.ehr.bronze_view import read_current
from assets.ehr.settings import EhrDomain
from resources.delta.store import DeltaTableStore
from transforms.expectations import (
    NHS_VALID_COLUMN,
    Bound,
    SuiteResult,
    freshness_suite,
    key_suite,
    nhs_number_problems,
    nhs_number_suite,
    range_suite,
    validate,
    with_nhs_number_validity,
)

KEYS_CHECK = "primary_key_unique_not_null"
NHS_NUMBER_CHECK = "nhs_number_validity"
RANGES_CHECK = "plausible_values"
FRESHNESS_CHECK = "freshness"
GX_CHECK_NAMES = frozenset({KEYS_CHECK, NHS_NUMBER_CHECK, RANGES_CHECK, FRESHNESS_CHECK})
# What the checks' first use of GX imports; importing it early is all the warm-up does.
GX_MODULES = ("great_expectations", "great_expectations.data_context.types.base")

_log = logging.getLogger(__name__)
_gx_import_lock = threading.Lock()
_gx_import: threading.Thread | None = None


def import_great_expectations_in_background() -> None:
    """Start importing Great Expectations on a daemon thread, once per process."""
    global _gx_import
    with _gx_import_lock:
        if _gx_import is None:
            _gx_import = threading.Thread(target=_import_gx, name="gx-import", daemon=True)
            _gx_import.start()


def wait_for_great_expectations_import() -> None:
    """Block until a background import (if any) is done, so two threads never import GX."""
    thread = _gx_import
    if thread is not None and thread is not threading.current_thread():
        thread.join()


def _import_gx() -> None:
    try:
        for module in GX_MODULES:
            importlib.import_module(module)
    except Exception:  # the check, importing it again, reports the real error
        _log.warning("importing Great Expectations in the background failed", exc_info=True)


def to_check_result(
    result: SuiteResult,
    *,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    metadata: Mapping[str, Any] | None = None,
) -> dg.AssetCheckResult:
    """A GX suite outcome as a Dagster check result, with counts and safe examples."""
    lines = ["| expectation | passed | unexpected | observed / examples |", "|---|---|---|---|"]
    examples: dict[str, list[Any]] = {}
    for outcome in result.results:
        shown = list(outcome.examples) if outcome.examples else outcome.observed_value
        if outcome.examples:
            examples[outcome.expectation] = list(outcome.examples)
        lines.append(
            f"| `{outcome.expectation}` | {'yes' if outcome.success else '**no**'} | "
            f"{outcome.unexpected_count:,} | {'' if shown is None else shown} |"
        )
    return dg.AssetCheckResult(
        passed=result.success,
        severity=severity,
        metadata={
            "rows": result.rows,
            "expectations": len(result.results),
            "failed_expectations": len(result.failed),
            "unexpected_values": sum(o.unexpected_count for o in result.failed),
            "results": dg.MetadataValue.md("\n".join(lines)),
            **({"failing_examples": dg.MetadataValue.json(examples)} if examples else {}),
            **(metadata or {}),
        },
    )


def _read(
    delta: DeltaTableStore,
    asset: dg.AssetKey,
    columns: list[str],
    bronze_key: Sequence[str] | None,
) -> pa.Table:
    """The columns a check needs; of an EHR bronze table's current rows when keyed."""
    if bronze_key is None:
        return delta.read(asset.path, columns=columns)
    return read_current(delta, asset.path, bronze_key, columns=columns)


def _suite_name(asset: dg.AssetKey, check: str) -> str:
    return f"{asset.to_python_identifier()}__{check}"


def build_key_check(
    *,
    asset: dg.AssetKey,
    keys: Sequence[str],
    required: Sequence[str] = (),
    blocking: bool = True,
    bronze_key: Sequence[str] | None = None,
) -> dg.AssetChecksDefinition:
    """The primary key is unique and never null (``required`` never null).

    Blocking on silver. On bronze (``blocking=False``, WARN) a repeated or missing key is
    the source's fault: silver quarantines those rows, so one bad row must not stop them.
    ``bronze_key`` (an EHR bronze table's primary key) reads the table's current view.
    """
    columns = list(dict.fromkeys([*keys, *required]))
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN

    @dg.asset_check(
        asset=asset,
        name=KEYS_CHECK,
        blocking=blocking,
        description=f"Key ({', '.join(keys)}) unique and not null; counts only, no values.",
    )
    def _check(delta: DeltaTableStore) -> dg.AssetCheckResult:
        wait_for_great_expectations_import()
        frame = _read(delta, asset, columns, bronze_key).to_pandas()
        suite = key_suite(_suite_name(asset, KEYS_CHECK), keys, required=required)
        return to_check_result(
            validate(frame, suite, identifier_columns=columns), severity=severity
        )

    return _check


def build_nhs_number_check(
    *, asset: dg.AssetKey, column: str, bronze_key: Sequence[str] | None = None
) -> dg.AssetChecksDefinition:
    """WARN: share of invalid NHS numbers (silver quarantines them, so this never blocks).

    ``bronze_key`` (an EHR bronze table's primary key) judges only the current rows.
    """

    @dg.asset_check(
        asset=asset,
        name=NHS_NUMBER_CHECK,
        description=(
            "NHS numbers are ten digits with a valid modulus-11 check digit; warns when any "
            "is invalid (those rows are quarantined in silver)."
        ),
    )
    def _check(delta: DeltaTableStore) -> dg.AssetCheckResult:
        wait_for_great_expectations_import()
        data = _read(delta, asset, [column], bronze_key)
        problems = nhs_number_problems(data.column(column).to_pylist())
        frame = with_nhs_number_validity(data.to_pandas(), column)
        suite = nhs_number_suite(_suite_name(asset, NHS_NUMBER_CHECK))
        result = validate(frame, suite, identifier_columns=[NHS_VALID_COLUMN])
        invalid = sum(problems.values())
        return to_check_result(
            result,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "invalid_nhs_numbers": invalid,
                "invalid_share": round(invalid / max(1, data.num_rows), 6),
                "invalid_by_reason": dg.MetadataValue.json(problems),
            },
        )

    return _check


def build_range_check(
    *,
    asset: dg.AssetKey,
    ranges: Mapping[str, tuple[Bound, Bound]],
    allowed_values: Mapping[str, Iterable[Any]] | None = None,
) -> dg.AssetChecksDefinition:
    """ERROR: values inside physiologically (or logically) possible bounds."""
    allowed = {column: list(values) for column, values in (allowed_values or {}).items()}
    columns = [*ranges, *allowed]

    @dg.asset_check(
        asset=asset,
        name=RANGES_CHECK,
        description=f"Values of {', '.join(columns)} inside possible bounds.",
    )
    def _check(delta: DeltaTableStore) -> dg.AssetCheckResult:
        wait_for_great_expectations_import()
        frame = delta.read(asset.path, columns=columns).to_pandas()
        suite = range_suite(_suite_name(asset, RANGES_CHECK), ranges, allowed_values=allowed)
        return to_check_result(validate(frame, suite))

    return _check


def build_freshness_check(
    *, asset: dg.AssetKey, column: str, max_age: timedelta
) -> dg.AssetChecksDefinition:
    """WARN: the newest ``column`` value is at most ``max_age`` old."""

    @dg.asset_check(
        asset=asset,
        name=FRESHNESS_CHECK,
        description=f"Newest `{column}` within {max_age.days} day(s) of now; warns otherwise.",
    )
    def _check(delta: DeltaTableStore) -> dg.AssetCheckResult:
        wait_for_great_expectations_import()
        now = datetime.now(UTC)
        frame = delta.read(asset.path, columns=[column]).to_pandas()
        suite = freshness_suite(
            _suite_name(asset, FRESHNESS_CHECK), column, newest_not_before=now - max_age
        )
        newest = frame[column].max()
        age_hours = None
        if not pd.isna(newest):
            newest_utc = newest.tz_localize("UTC") if newest.tzinfo is None else newest
            age_hours = round((now - newest_utc.to_pydatetime()).total_seconds() / 3600, 1)
        return to_check_result(
            validate(frame, suite),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"newest_age_hours": age_hours, "max_age_hours": max_age.days * 24},
        )

    return _check


def build_bronze_checks(settings: EhrDomain) -> list[dg.AssetChecksDefinition]:
    """Key checks on every bronze source table; NHS number validity where configured."""
    checks = []
    for connection in settings.data_source_connections:
        for table in connection.tables:
            key = dg.AssetKey(["bronze", connection.name, table.name])
            checks.append(
                build_key_check(
                    asset=key,
                    keys=table.primary_key,
                    blocking=False,
                    bronze_key=table.primary_key,
                )
            )
            if table.nhs_number_column:
                checks.append(
                    build_nhs_number_check(
                        asset=key, column=table.nhs_number_column, bronze_key=table.primary_key
                    )
                )
    return checks
