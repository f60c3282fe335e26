"""The one-line console: a failed step shows its cause, not Dagster's wrapper and traces."""

from __future__ import annotations

import threading

import dagster as dg
import pytest

from flowehr_pipelines.console_logger import one_line, one_line_console_logger
from resources.progress import Progress

STEP_FAILURE = """Execution of step "bronze_ehr" failed.

dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op "x"::

resources.delta.log_health.BrokenTableError: internal/etl_state: Delta log file x is empty

Stack Trace:
  File "/x/dagster/_core/execution/plan/utils.py", line 57, in op_execution_error_boundary
    yield
  File "/x/resources/delta/reads.py", line 60, in table
    raise ValueError: not this one
"""


def test_a_step_failure_becomes_its_first_line_and_innermost_cause() -> None:
    assert one_line(STEP_FAILURE) == (
        'Execution of step "bronze_ehr" failed. '
        "BrokenTableError: internal/etl_state: Delta log file x is empty"
    )


def test_chained_causes_give_the_innermost() -> None:
    message = (
        "Run failed.\n\nValueError: outer\n\nThe above exception was caused by the following"
        " exception:\nKeyError: 'visit_id'\n"
    )
    assert one_line(message) == "Run failed. KeyError: 'visit_id'"


def test_single_lines_and_lines_without_an_error_are_kept() -> None:
    assert one_line("wrote 3 report(s)") == "wrote 3 report(s)"
    assert one_line("Dependencies failed.\nNot executing.") == "Dependencies failed."


def test_a_failing_job_prints_one_line_on_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    @dg.op
    def fails() -> None:
        raise RuntimeError("the source is down")

    @dg.job(logger_defs={"console": one_line_console_logger})
    def job() -> None:
        fails()

    console = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # as flowehr run
    result = job.execute_in_process(run_config=console, raise_on_error=False)
    assert not result.success
    errors = [line for line in capsys.readouterr().err.splitlines() if " - ERROR - " in line]
    failure = next(line for line in errors if "STEP_FAILURE" in line)
    assert failure.endswith("RuntimeError: the source is down")
    assert not any("Stack Trace" in line for line in errors)


def test_progress_lines_from_the_reporting_thread_reach_the_console(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logged = threading.Event()

    @dg.op
    def slow(context) -> None:  # type: ignore[no-untyped-def]  # a string annotation Dagster refuses
        def log(line: str) -> None:
            context.log.info(line)
            logged.set()

        with Progress("bronze/x", log, unit="files", total=2, interval=0.05):
            logged.wait(20)  # bounded: the line comes from the progress thread

    @dg.job(logger_defs={"console": one_line_console_logger})
    def job() -> None:
        slow()

    console = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # as flowehr run
    assert job.execute_in_process(run_config=console).success
    infos = [line for line in capsys.readouterr().err.splitlines() if " - INFO - " in line]
    assert any(
        line.endswith("progress bronze/x: 0 of 2 files done (0%), 0 s elapsed") for line in infos
    )
