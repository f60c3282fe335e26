"""The researcher guide's walk-through script runs, and says what the guide says it shows."""

from __future__ import annotations

import os
import subprocess
import sys

from assets.features.tables import feature_key
from flowehr_pipelines.config import load_settings
from flowehr_pipelines.deployment import build_delta_store
from tests.conftest import REPO_ROOT
from tests.flowehr_pipelines.cli.test_features import write_cohort_lake
from tests.flowehr_pipelines.researcher.test_store import feature_rows, news2_row

SCRIPT = REPO_ROOT / "docs" / "examples" / "researcher_walkthrough.py"


def test_walkthrough_runs_with_the_readers_environment_only() -> None:
    settings = load_settings()
    delta = build_delta_store(settings)
    write_cohort_lake()  # demographics, diagnoses and outcomes for the cohort step
    path = feature_key("news2").path
    delta.overwrite(path, feature_rows("news2", [news2_row(1, 1, 3), news2_row(1, 5, 7)]))
    # A second version: the first version's file stays until VACUUM.
    delta.overwrite(path, feature_rows("news2", [news2_row(1, 1, 3), news2_row(1, 5, 8)]))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "FLOWEHR_LAKE_ROOT": str(settings.lake_root),
        "PYTHONPATH": str(REPO_ROOT),
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "table news2: version 2, rows 2" in out
    assert "cohort sepsis_demo: 1 visits, code lists ['sepsis']" in out
    assert "cohort training set: 1 rows, coded sepsis by the event 1" in out
    assert "every value known by its event time: True" in out
    assert "training set: 2 rows" in out and "'news2_total'" in out
    assert "same rows as polars and arrow: True" in out
    assert "pinned to news2 version 2: equal True" in out
    assert "rows read by polars 2, by duckdb 2" in out
    assert "rows in the table 2, rows in its Parquet files 7" in out
