"""compose/grafana-dashboard.json: a valid Grafana dashboard whose every query reads a metric we export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from apps.monitoring.metrics import exported_metric_names

DASHBOARD = Path(__file__).resolve().parents[2] / "compose" / "grafana-dashboard.json"
# PromQL functions, keywords and Grafana variables that look like names but are not metrics.
_NOT_METRICS = {"sum", "by", "max", "rate", "increase", "histogram_quantile", "clamp_min", "le", "without"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: names before a selector or a range, and charge_* names."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_strings)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "by ()", without_labels)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[)", without_groupings))
    names |= {
        n for n in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", without_groupings) if n.startswith("charge_")
    }
    return names - _NOT_METRICS


def test_the_dashboard_model_is_complete(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"]
    assert dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_every_query_names_a_metric_we_export(dashboard: dict[str, Any]) -> None:
    exported = exported_metric_names()

    for title, expr in _queries(dashboard):
        names = metric_names(expr)
        assert names, (title, expr)
        assert names <= exported, (title, sorted(names - exported))


def test_the_dashboard_covers_every_metric_family(dashboard: dict[str, Any]) -> None:
    used = {name for _, expr in _queries(dashboard) for name in metric_names(expr)}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exported_metric_names()}

    missing = {family for family in families if not any(name.startswith(family) for name in used)}
    assert not missing, sorted(missing)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (route) (rate(charge_http_requests_total{status=~"5.."}[5m]))',
            {"charge_http_requests_total"},
        ),
        ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))", {"x_bucket"}),
        ("max(charge_requests_pending)", {"charge_requests_pending"}),
    ],
)
def test_metric_names_are_found_in_expressions(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
