"""An instance on disk holding a succeeded, a failed, a queued and a canceled run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import REPO_ROOT
from tests.flowehr_pipelines.metrics.pipeline import DEFS

# Runs submitted to this instance wait in the queue: no daemon ever drains it here.
QUEUED_INSTANCE = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


@pytest.fixture
def dagster_home(tmp_path: Path) -> Iterator[Path]:
    """The runs a scrape should see: one success, one failure, one queued, one canceled."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(QUEUED_INSTANCE)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert DEFS.resolve_job_def("ehr_job").execute_in_process(instance=instance).success
        failed = DEFS.resolve_job_def("silver_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not failed.success
        instance.add_run(dg.DagsterRun(job_name="ehr_job", status=dg.DagsterRunStatus.CANCELED))
    # Submitted as the UI or a sensor would: through the instance's run coordinator.
    subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "launch",
            "-m",
            "tests.flowehr_pipelines.metrics.pipeline",
            "-a",
            "DEFS",
            "-j",
            "reporting_job",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield home
