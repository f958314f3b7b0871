"""The alert rules, the Prometheus config and the Grafana dashboard are sound."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, Obj, find_tool, run

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hookstream.json"

# The metric names docs/architecture.md promises.
PRODUCT_METRICS = (
    "hookstream_ingress_requests_total",
    "hookstream_signature_failures_total",
    "hookstream_produce_seconds",
    "hookstream_events_total",
    "hookstream_processing_seconds",
    "hookstream_retry_queue_depth",
    "hookstream_dlq_depth",
    "hookstream_destination_state",
    "hookstream_delivery_seconds",
)

# Grafana's template variables, replaced by what they stand for at query time.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$source": ".*", "$group": "hookstream"}


@pytest.fixture(scope="session")
def promtool() -> str:
    return find_tool("promtool")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_alert_rules_pass_promtool(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_at_their_thresholds(promtool: str) -> None:
    result = run(promtool, "test", "rules", "alerts_test.yml", cwd=ROOT / "tests" / "deploy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool(promtool: str) -> None:
    result = run(
        promtool,
        "check",
        "config",
        "--syntax-only",
        str(ROOT / "deploy" / "prometheus" / "prometheus.yml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_product_alerts_ship() -> None:
    """The four of the product's alerts, a lane blocked longer than an hour, and a
    destination whose breaker stays open."""
    rules = [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]
    by_metric = {
        "hookstream_retry_queue_depth": "> 500",
        "hookstream_signature_failures_total": "> 0.02",
        "hookstream_dlq_depth": "> 0",
        "hookstream_processing_seconds_bucket": "> 5",
        "hookstream_lane_blocked_seconds": "> 3600",
        "hookstream_destination_state": "> 0",
    }
    assert len(rules) == len(by_metric)
    for metric, threshold in by_metric.items():
        (rule,) = [r for r in rules if metric in r["expr"]]
        assert re.sub(r"\s+", " ", rule["expr"]).strip().endswith(threshold), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_dashboard_covers_the_product_metrics() -> None:
    queries = "\n".join(dashboard_queries())
    for metric in PRODUCT_METRICS:
        assert metric in queries, metric


def test_dashboard_shows_the_operator_views() -> None:
    queries = [re.sub(r"\s+", " ", q) for q in dashboard_queries()]

    def shown(*parts: str) -> bool:
        return any(all(part in query for part in parts) for query in queries)

    assert shown("hookstream_ingress_requests_total", "by (code)"), "request rate by code"
    assert shown("hookstream_signature_failures_total", "/", "hookstream_ingress_requests_total"), (
        "failure ratio"
    )
    assert shown("histogram_quantile(0.95", "hookstream_processing_seconds_bucket"), (
        "processing p95"
    )
    assert shown("hookstream_retry_queue_depth", "by (tier)"), "retry depth per tier"
    assert shown("hookstream_dlq_depth"), "DLQ depth"
    assert shown("kafka_consumergroup_lag"), "consumer lag"
    assert shown("hookstream_destination_state", "by (destination, state)"), "destination state"


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, parses as PromQL."""
    rules = []
    for number, query in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"unknown Grafana variable in {query}"
        rules.append({"record": f"dashboard:query_{number}", "expr": query})
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    dashboard: Obj = json.loads(DASHBOARD.read_text())
    provisioned = yaml.safe_load(
        (
            ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
        ).read_text()
    )["datasources"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] in {d["uid"] for d in provisioned}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert dashboard["uid"] == "hookstream"
