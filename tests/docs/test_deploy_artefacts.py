"""The deployment artefacts agree with the code: the image installs as CI does, the Helm
values serve the same module, and the alert rules and dashboard use real metric names."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import dagster as dg
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flowehr_pipelines.metrics.server import build_registry
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
METRIC = re.compile(r"\bflowehr_[a-z_]+\b")


def _metric_names() -> set[str]:
    with dg.DagsterInstance.ephemeral() as instance:
        text = generate_latest(build_registry(lambda: instance, lookback=timedelta(hours=1)))
    return {family.name for family in text_string_to_metric_families(text.decode())}


def test_the_image_installs_with_the_make_target_ci_runs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^RUN make install\b", dockerfile, re.MULTILINE)
    assert re.search(r"^make install$", ci, re.MULTILINE)
    assert "FROM python:3.11" in dockerfile  # the one version pyproject allows


def test_image_workspace_and_helm_values_serve_the_same_module() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text(encoding="utf-8"))
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text(encoding="utf-8"))
    module = workspace["load_from"][0]["python_module"]["module_name"]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    assert f'"-m", "{module}"' in dockerfile
    assert f'"-p", "{deployment["port"]}"' in dockerfile
    grpc = yaml.safe_load((DEPLOY / "workspace.grpc.yaml").read_text(encoding="utf-8"))
    server = grpc["load_from"][0]["grpc_server"]
    assert server["port"] == deployment["port"]
    assert server["location_name"] == workspace["load_from"][0]["python_module"]["location_name"]
    assert f'"--location-name", "{server["location_name"]}"' in dockerfile
    assert values["postgresql"]["enabled"] is False
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"


def test_alert_rules_and_dashboard_use_metrics_the_endpoint_serves() -> None:
    served = _metric_names()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text(encoding="utf-8"))
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "flowehr.json").read_text(encoding="utf-8"))
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert used, "no metric referenced"
    assert used <= served, used - served
