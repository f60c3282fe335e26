"""Definitions with two independent assets that only finish if they run at the same time.

Loaded by ``tests/test_runner.py`` in this process and, as ``run_parts`` loads a
part's code, in a child process. Each asset announces itself with a file in
``$FLOWEHR_TEST_MEETING_DIR`` and waits for the other's; ``$FLOWEHR_TEST_FAIL`` names
one to fail.
"""

import os
import time
from pathlib import Path

import dagster as dg

from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB

WAIT_SECONDS = 60


def _meet(me: str, other: str) -> None:
    if os.environ.get("FLOWEHR_TEST_FAIL") == me:
        raise RuntimeError(f"{me} was told to fail")
    meeting = Path(os.environ["FLOWEHR_TEST_MEETING_DIR"])
    (meeting / me).write_text(str(os.getpid()))
    deadline = time.monotonic() + float(os.environ.get("FLOWEHR_TEST_MEETING_WAIT", WAIT_SECONDS))
    while not (meeting / other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me} ran without {other}")
        time.sleep(0.05)


@dg.asset(required_resource_keys={"spark"})  # stands for a Spark part: it stays in process
def left() -> None:
    _meet("left", "right")


@dg.asset
def right() -> None:
    _meet("right", "left")


defs = dg.Definitions(
    assets=[left, right],
    resources={"spark": dg.ResourceDefinition.none_resource()},
    jobs=[dg.define_asset_job(ALL_ASSETS_JOB, executor_def=dg.in_process_executor)],
)
