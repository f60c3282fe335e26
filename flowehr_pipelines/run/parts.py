"""Run the independent parts of the asset graph at the same time, in two processes.

The all-assets job splits into parts that share no asset: the EHR sources to the
features (Spark) and the CDC log to reporting (Arrow, DuckDB, delta-rs). Run one after
the other they queue on each other's waits (the JVM, the event log, small Spark jobs)
while a core idles; run at once they overlap. The Spark parts run in this process (one
JVM) and the rest in one child process (``python -m flowehr_pipelines.run.parts``),
started before this process starts any thread: Dagster configures process-wide logging
and stdout capture for every run it starts, which is not safe for two runs in one
process at once.

A child records its runs in the same Dagster instance, prints their ids and exits; it
exits too if its parent dies, so killing ``flowehr run`` stops all of it (a killed run
is safe to repeat: every asset is idempotent).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any, cast

import dagster as dg

from flowehr_pipelines.automation.jobs import ALL_ASSETS_JOB
from flowehr_pipelines.run.warmup import uses_spark

DEFAULT_CODE = "flowehr_pipelines.definitions:defs"
CHILD_NICENESS = 10
# The summary is the output; step-level DEBUG events stay in the event log and the UI.
QUIET_CONSOLE: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def independent_parts(job: dg.JobDefinition, keys: set[dg.AssetKey]) -> list[set[dg.AssetKey]]:
    """The selected assets split into parts that share no dependency, largest first.

    Two assets are in one part when one depends on the other through selected assets,
    or when one step makes both (a multi-asset): the weakly connected components of
    the selected graph. Parts can run in any order, or at once.
    """
    graph = job.asset_layer.asset_graph
    leader = {key: key for key in keys}

    def find(key: dg.AssetKey) -> dg.AssetKey:
        while leader[key] != key:
            leader[key] = leader[leader[key]]
            key = leader[key]
        return key

    made_by: dict[int, dg.AssetKey] = {}
    for key in keys:
        node = graph.get(key)
        for parent in node.parent_keys:
            if parent in keys:
                leader[find(parent)] = find(key)
        sibling = made_by.setdefault(id(node.assets_def), key)
        leader[find(sibling)] = find(key)
    parts: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for key in keys:
        parts.setdefault(find(key), set()).add(key)
    return sorted(parts.values(), key=lambda part: (-len(part), min(part).to_user_string()))


def concurrent_groups(job: dg.JobDefinition, keys: set[dg.AssetKey]) -> list[set[dg.AssetKey]]:
    """The selected assets as at most two groups to run at once: Spark's, and the rest.

    What overlaps well is a Spark part (its small jobs leave a core idle while the JVM
    works) with parts that need no Spark; a second JVM or a child process per small
    part would cost more than it saves. So there are two groups only when the
    selection has both kinds, each a union of whole independent parts.
    """
    parts = independent_parts(job, keys)
    spark = set().union(*[part for part in parts if uses_spark(job, part)])
    rest = keys - spark
    return [spark, rest] if spark and rest else [keys]


def report_inputs(defs: dg.Definitions) -> set[dg.AssetKey]:
    """The assets the partitioned reports read."""
    from assets.reports.partitions import COMPLETED_BATCH_REPORT, COMPLETED_COMMS_REPORT

    graph = defs.resolve_asset_graph()
    reports = (COMPLETED_COMMS_REPORT, COMPLETED_BATCH_REPORT)
    return {parent for key in reports if graph.has(key) for parent in graph.get(key).parent_keys}


def subset(job: dg.JobDefinition, keys: set[dg.AssetKey]) -> dg.JobDefinition:
    """The job cut down to some assets and the checks the job has on them."""
    if keys == set(job.asset_layer.selected_asset_keys):
        return job
    graph = job.asset_layer.asset_graph
    checks = {c for c in graph.asset_check_keys if c.asset_key in keys}
    return job.get_subset(asset_selection=keys, asset_check_selection=checks)


def execute_part(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    keys: set[dg.AssetKey],
    *,
    selected: Sequence[dg.AssetKey] | None,
    with_reports: bool,
    run_config: Mapping[str, Any] | None = None,
) -> list[str]:
    """Run one part in this process, then the reports due if asked and it succeeded."""
    job = subset(defs.resolve_job_def(ALL_ASSETS_JOB), keys)
    result = job.execute_in_process(
        instance=instance,
        run_config={**QUIET_CONSOLE, **(run_config or {})},
        raise_on_error=False,
        tags={"flowehr/launched_by": "flowehr run"},
    )
    run_ids = [result.run_id]
    if with_reports and result.success:
        run_ids.extend(execute_due_reports(defs, instance, selected))
    return run_ids


def execute_due_reports(
    defs: dg.Definitions, instance: dg.DagsterInstance, selected: Sequence[dg.AssetKey] | None
) -> list[str]:
    """Run the report partitions due now, as the report schedules would request them."""
    from flowehr_pipelines.automation.reporting import report_catch_up
    from flowehr_pipelines.config import load_settings

    resources = defs.resources or {}
    if "delta" not in resources or "objects" not in resources:
        return []
    with dg.build_resources({"delta": resources["delta"], "objects": resources["objects"]}) as res:
        plans = report_catch_up(
            settings=load_settings(),
            instance=instance,
            delta=res.delta,
            objects=res.objects,
            selected=None if selected is None else set(selected),
        )
    run_ids = []
    for plan in plans:
        for request in plan.run_requests:
            result = defs.resolve_job_def(plan.job_name).execute_in_process(
                instance=instance,
                run_config=QUIET_CONSOLE,
                raise_on_error=False,
                tags={**request.tags, "flowehr/launched_by": "flowehr run"},
            )
            run_ids.append(result.run_id)
    return run_ids


@dataclass
class PartProcess:
    """One part running in a child process."""

    process: subprocess.Popen[str]
    result_file: Any  # a NamedTemporaryFile, removed when closed

    @classmethod
    def start(
        cls,
        keys: set[dg.AssetKey],
        *,
        instance: dg.DagsterInstance,
        selected: Sequence[dg.AssetKey] | None,
        with_reports: bool,
        run_config: Mapping[str, Any] | None = None,
        code: str = DEFAULT_CODE,
    ) -> "PartProcess":
        result_file = tempfile.NamedTemporaryFile(prefix="flowehr-run-part-", suffix=".json")
        request = {
            "code": code,
            "result_path": result_file.name,
            "instance_ref": dg.serialize_value(instance.get_ref()),
            "keys": sorted(k.to_user_string() for k in keys),
            "selected": None if selected is None else [k.to_user_string() for k in selected],
            "with_reports": with_reports,
            "run_config": dict(run_config or {}),
            "parent_pid": os.getpid(),
        }
        # The child's output goes where this process's goes; only its request and the
        # ids of its runs pass between the two.
        process = subprocess.Popen(  # nosec B603: fixed argv, no shell
            [sys.executable, "-m", "flowehr_pipelines.run.parts"],
            stdin=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(request))
        process.stdin.close()
        return cls(process, result_file)

    def wait(self) -> list[str]:
        """The ids of the runs the child made (a failed run is in the event log)."""
        code = self.process.wait()
        with open(self.result_file.name, encoding="utf-8") as result:
            text = result.read()
        self.result_file.close()
        if not text:
            raise RuntimeError(f"a part of the run stopped before it reported (exit code {code})")
        return list(json.loads(text))

    def stop(self, grace_seconds: float = 20.0) -> None:
        """Interrupt the child (its runs record that they failed), then kill it."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(2)  # SIGINT: Dagster marks the child's run as failed
        try:
            self.process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _exit_with_parent(parent_pid: int) -> None:
    """Exit at once when the parent is gone (killed, not only stopped)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load_definitions(code: str) -> dg.Definitions:
    module_name, _, attribute = code.partition(":")
    loaded = getattr(import_module(module_name), attribute)
    return loaded() if callable(loaded) and not isinstance(loaded, dg.Definitions) else loaded


def main() -> None:
    """Child entry point: run the part described on stdin, print the run ids."""
    request = json.loads(sys.stdin.read())
    _exit_with_parent(int(request["parent_pid"]))
    # The Spark part in the parent is the longer, latency-bound path: it gets the CPU
    # first and this part takes what it leaves (the JVM start no longer queues behind
    # CDC parsing).
    os.nice(CHILD_NICENESS)
    from flowehr_pipelines.run.warmup import start_slow_dependencies, wait_for_slow_dependencies

    defs = _load_definitions(request["code"])
    keys = {dg.AssetKey.from_user_string(k) for k in request["keys"]}
    selected = request["selected"]
    with dg.DagsterInstance.from_ref(
        # The ref's type is Dagster's; the public deserialiser rebuilds it by its record name.
        cast(Any, dg.deserialize_value(request["instance_ref"]))
    ) as instance:
        start_slow_dependencies(defs, subset(defs.resolve_job_def(ALL_ASSETS_JOB), keys))
        try:
            run_ids = execute_part(
                defs,
                instance,
                keys,
                selected=None
                if selected is None
                else [dg.AssetKey.from_user_string(k) for k in selected],
                with_reports=request["with_reports"],
                run_config=request["run_config"],
            )
        finally:
            wait_for_slow_dependencies()
    with open(request["result_path"], "w", encoding="utf-8") as result:
        json.dump(run_ids, result)


if __name__ == "__main__":
    main()
