"""Great Expectations 1.x suites for lake tables, validated on pandas (no Dagster import).

The suite builders take plain arguments (key columns, ranges, a freshness bound), so
the same suites run in a Dagster asset check, a Databricks job or a unit test.
Validation happens in one ephemeral GX context per process (nothing written to disk,
no usage analytics, no progress bars) against a pandas DataFrame holding only the
columns a suite needs, which keeps a check to milliseconds.

Results come back as plain dataclasses. Failing examples are kept only for value
columns (an SpO2 of 104 is worth showing); for identifier columns (keys, NHS numbers,
pseudonyms) only counts leave this module, because check results are shown in the UI.

Great Expectations takes seconds to import, so it is imported on first use, never
when the code location loads.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from transforms.identifiers import nhs_number_problem

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite
    from great_expectations.data_context import AbstractDataContext

NHS_VALID_COLUMN = "nhs_number_is_valid"
MAX_EXAMPLES = 5
_DATASOURCE = "flowehr"
_LOCK = threading.Lock()

Bound = float | int | None


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's outcome; ``examples`` is empty for identifier columns."""

    expectation: str
    column: str | None
    success: bool
    unexpected_count: int
    unexpected_percent: float
    observed_value: Any
    examples: tuple[Any, ...]


@dataclass(frozen=True)
class SuiteResult:
    """A whole suite's outcome over ``rows`` rows."""

    suite: str
    success: bool
    rows: int
    results: tuple[ExpectationResult, ...]

    @property
    def failed(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success)


# -- suites ---------------------------------------------------------------------------


def key_suite(name: str, keys: Sequence[str], *, required: Sequence[str] = ()) -> ExpectationSuite:
    """Primary key unique and never null; ``required`` columns never null either.

    Args:
        name: the suite's name (one per table and check).
        keys: the primary key columns.
        required: further columns that must always hold a value.
    """
    import great_expectations as gx

    suite = _new_suite(name)
    for column in [*keys, *required]:
        suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=column))
    if len(keys) == 1:
        suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column=keys[0]))
    else:
        suite.add_expectation(
            gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(keys))
        )
    return suite


def range_suite(
    name: str,
    ranges: Mapping[str, tuple[Bound, Bound]],
    *,
    allowed_values: Mapping[str, Iterable[Any]] | None = None,
) -> ExpectationSuite:
    """Values inside plausible bounds (inclusive; nulls are not judged).

    Args:
        name: the suite's name.
        ranges: column -> (minimum, maximum); either bound may be None.
        allowed_values: column -> the only values it may hold.
    """
    import great_expectations as gx

    suite = _new_suite(name)
    for column, (low, high) in ranges.items():
        suite.add_expectation(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column=column, min_value=low, max_value=high
            )
        )
    for column, values in (allowed_values or {}).items():
        suite.add_expectation(
            gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=list(values))
        )
    return suite


def freshness_suite(name: str, column: str, *, newest_not_before: datetime) -> ExpectationSuite:
    """The newest ``column`` value is no older than ``newest_not_before`` (UTC)."""
    import great_expectations as gx

    suite = _new_suite(name)
    suite.add_expectation(
        gx.expectations.ExpectColumnMaxToBeBetween(column=column, min_value=newest_not_before)
    )
    return suite


def nhs_number_suite(name: str) -> ExpectationSuite:
    """Every NHS number is valid; run on :func:`with_nhs_number_validity` output."""
    import great_expectations as gx

    suite = _new_suite(name)
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToBeInSet(column=NHS_VALID_COLUMN, value_set=[True])
    )
    return suite


def with_nhs_number_validity(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Replace an NHS number column by its validity (``nhs_number_is_valid``).

    The numbers themselves are dropped, so nothing downstream can display them.
    """
    valid = frame[column].map(lambda value: nhs_number_problem(value) is None).astype(bool)
    return frame.drop(columns=[column]).assign(**{NHS_VALID_COLUMN: valid})


def nhs_number_problems(values: Iterable[object]) -> dict[str, int]:
    """Invalid NHS numbers counted by reason; the reasons never repeat a number."""
    counts: dict[str, int] = {}
    for value in values:
        problem = nhs_number_problem(value)
        if problem is not None:
            counts[problem] = counts.get(problem, 0) + 1
    return dict(sorted(counts.items()))


# -- validation -----------------------------------------------------------------------


def validate(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    identifier_columns: Iterable[str] = (),
    max_examples: int = MAX_EXAMPLES,
) -> SuiteResult:
    """Validate a DataFrame against a suite in the shared ephemeral context.

    Naive timestamps are taken to be UTC, as everything in the lake is.

    Args:
        frame: the rows, with at least the columns the suite names.
        suite: a suite from the builders above.
        identifier_columns: columns whose failing values must not be shown.
        max_examples: how many failing values to keep per value-column expectation.
    """
    frame = _utc(frame)
    hidden = set(identifier_columns)
    with _LOCK:
        batch = _batch_definition(suite.name).get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(
            suite,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_examples},
        )
    results = []
    for result in outcome.results:
        config = result.expectation_config
        assert config is not None
        kwargs = config.kwargs
        columns = [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))
        column = ", ".join(columns) or None
        details = result.result or {}
        identifying = bool(hidden & set(columns))
        examples = () if identifying or result.success else _examples(details, max_examples)
        results.append(
            ExpectationResult(
                expectation=f"{config.type}({column})" if column else config.type,
                column=column,
                success=bool(result.success),
                unexpected_count=int(details.get("unexpected_count") or 0),
                unexpected_percent=float(details.get("unexpected_percent") or 0.0),
                observed_value=None if identifying else _plain(details.get("observed_value")),
                examples=examples,
            )
        )
    return SuiteResult(
        suite=suite.name,
        success=bool(outcome.success),
        rows=len(frame),
        results=tuple(results),
    )


def _new_suite(name: str) -> ExpectationSuite:
    import great_expectations as gx

    _context()  # GX binds suites to the active context; make sure ours is the one
    return gx.ExpectationSuite(name=name)


@functools.lru_cache(maxsize=1)
def _context() -> AbstractDataContext:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_pandas(_DATASOURCE)
    return context


def _batch_definition(asset_name: str) -> Any:
    datasource: Any = _context().data_sources.get(_DATASOURCE)  # a PandasDatasource
    try:
        asset = datasource.get_asset(asset_name)
    except LookupError:
        asset = datasource.add_dataframe_asset(asset_name)
        return asset.add_batch_definition_whole_dataframe("whole")
    return asset.get_batch_definition("whole")


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    naive = [
        name
        for name, dtype in frame.dtypes.items()
        if pd.api.types.is_datetime64_dtype(dtype) and not isinstance(dtype, pd.DatetimeTZDtype)
    ]
    if not naive:
        return frame
    return frame.assign(**{str(name): frame[name].dt.tz_localize("UTC") for name in naive})


def _examples(details: Mapping[str, Any], limit: int) -> tuple[Any, ...]:
    values = details.get("partial_unexpected_list") or []
    return tuple(_plain(value) for value in values[:limit])


def _plain(value: Any) -> Any:
    """JSON-friendly scalars: numpy to Python, NaN to None, timestamps to ISO text."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
