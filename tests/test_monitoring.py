"""docker/'s Grafana dashboard and Prometheus alert rules use only what /metrics exports.

Every PromQL expression is parsed by a real PromQL parser (promql-parser); each metric it
selects must be a sample name the daemon's Metrics renders, and each label it matches or
groups by must be one of that metric's labels (or one Prometheus adds at scrape time).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cdc_sync.core.report import CycleKind, CycleReport
from cdc_sync.core.resources import Resource
from cdc_sync.daemon.metrics import Metrics
from cdc_sync.daemon.outcome import CycleOutcome

DOCKER = Path(__file__).resolve().parent.parent / "docker"
DASHBOARD = DOCKER / "grafana" / "cdc-sync-dashboard.json"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
SCRAPE_LABELS = {"instance", "job"}
# Grafana's own variables, replaced by what Grafana would put there before PromQL sees them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def exported() -> dict[str, set[str]]:
    """Every sample name /metrics can show, with its label names (every setter used once)."""
    metrics = Metrics()
    report = CycleReport(kind=CycleKind.SYNC)
    report.for_resource(Resource.ORDERS).counts.sent = 1
    report.for_resource(Resource.ORDERS).counts.rejected = 1
    metrics.cycle_finished(CycleOutcome(CycleKind.SYNC, 1e9, 1.0, report))
    metrics.set_active(True)
    metrics.set_state_counts("orders", {"pending": 1})
    metrics.set_mapping_problems(1)
    metrics.set_mapping_held({"orders": 1})
    metrics.count_response("200")
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"dashboard panel {panel['title']!r}", target["expr"]


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def expressions() -> list[tuple[str, str]]:
    found = list(dashboard_expressions())
    found += [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    return found


def selected(expr: str) -> list[tuple[str | None, list[str], list[str]]]:
    """Each selector's metric name and matched labels, and the labels each aggregation groups
    by (with the metric names it aggregates), as the parser sees the expression."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    found: list[tuple[str | None, list[str], list[str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            labels = [m.name for m in node.matchers.matchers if m.name != "__name__"]
            found.append((node.name, labels, []))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouped = list(node.modifier.labels)

            def in_group(sub: Any) -> bool:
                if isinstance(sub, promql_parser.VectorSelector):
                    found.append((sub.name, [], grouped))
                return True

            promql_parser.walk(node.expr, in_group)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


@pytest.mark.parametrize(("where", "expr"), expressions(), ids=lambda v: str(v)[:60])
def test_every_metric_and_label_an_expression_uses_is_exported(where: str, expr: str) -> None:
    names = exported()
    uses = selected(expr)
    assert uses, f"{where}: {expr!r} selects no metric"
    for name, matched, grouped in uses:
        assert name is not None, f"{where}: name the metric in {expr!r}"
        assert name in names, f"{where}: {name} is not exported by /metrics ({sorted(names)})"
        allowed = names[name] | SCRAPE_LABELS
        unknown = (set(matched) | set(grouped)) - allowed
        assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"


def test_the_dashboard_shows_every_exported_metric() -> None:
    shown = {name for _, expr in dashboard_expressions() for name, _, _ in selected(expr)}
    missing = set(exported()) - shown
    assert not missing, f"the dashboard shows nothing of {sorted(missing)}"


def test_the_alert_rules_are_a_prometheus_rule_file() -> None:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(loaded) == {"groups"}
    assert [group["name"] for group in loaded["groups"]] == ["cdc-sync"]
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"CdcSync[A-Z][A-Za-z]+", rule["alert"])
        promql_parser.parse(rule["expr"])  # raises on a syntax error
        if "for" in rule:
            assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_the_alerts_cover_what_an_operator_must_hear_about() -> None:
    used = {name for rule in alert_rules() for name, _, _ in selected(rule["expr"])}
    assert {"cdc_sync_active", "cdc_sync_last_success_timestamp_seconds",
            "cdc_sync_records_rejected_total", "cdc_sync_state_records",
            "cdc_sync_mapping_problems", "cdc_sync_mapping_held_records",
            "cdc_sync_metrilo_responses_total", "cdc_sync_cycles_total"} <= used


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"]
    assert dashboard["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"].strip("${}") in variables, panel["title"]
        assert panel["targets"], panel["title"]


def test_the_docker_readme_points_at_both_files() -> None:
    readme = (DOCKER / "README.md").read_text(encoding="utf-8")
    assert "grafana/cdc-sync-dashboard.json" in readme
    assert "prometheus/alerts.yml" in readme
