"""The pure parts of scripts/compose-test's checks (the live run is `make compose-test`).

The dashboard's queries are filled in as Grafana fills them; the hit ratio and the replicas are
read from prediction rows as the test reads them from the predictions topic.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from compose_checks import ALERTS, DASHBOARD, Predictions, alert_rule_problems, expand, panel_queries
from compose_stack import StackError


def test_every_dashboard_query_is_filled_in_with_no_variable_left() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = [v["name"] for v in dashboard["templating"]["list"]]
    queries = list(panel_queries(dashboard["panels"]))
    titled = {title for title, _ in queries}
    assert len(titled) == len([p for p in dashboard["panels"] if p.get("targets")]), "a panel without a query"
    for _, expr in queries:
        filled = expand(expr, {name: [".*", "0", "1"] for name in names})
        assert filled
        assert all("$" not in e for e in filled)


def test_expand_fills_each_value_and_grafana_intervals() -> None:
    expr = 'rate(x{partition=~"$partition"}[$__rate_interval])'
    assert expand(expr, {"partition": [".*", "2"]}) == [
        'rate(x{partition=~".*"}[1m])',
        'rate(x{partition=~"2"}[1m])',
    ]
    with pytest.raises(StackError, match="unknown variable"):
        expand("x{a=~'$nope'}", {"partition": ["0"]})
    with pytest.raises(StackError, match="no value"):
        expand('x{partition=~"$partition"}', {"partition": []})


def test_rows_nested_panels_are_queried_too() -> None:
    panels = [{"type": "row", "panels": [{"title": "inner", "targets": [{"expr": "up"}]}]}]
    assert list(panel_queries(panels)) == [("inner", "up")]


def test_hit_ratio_is_over_the_last_thousand_by_input_offset_and_instances_since() -> None:
    predictions = Predictions("unused:9092")
    rows = [(offset, offset >= 5, "a" if offset < 1000 else "b") for offset in range(1005)]
    predictions.by_partition[0] = list(reversed(rows))  # read order does not matter
    assert predictions.hit_ratio(0) == 1.0  # offsets 5..1004
    predictions.by_partition[0].append((1005, False, "b"))
    assert predictions.hit_ratio(0) == 0.999
    assert predictions.instances() == {"a", "b"}
    assert predictions.instances(since={0: 1000}) == {"b"}
    assert predictions.offsets(0)[:3] == [0, 1, 2]


def test_alert_rules_are_checked_loaded_healthy_and_all_there() -> None:
    expected = ALERTS.read_text().count("- alert: ")
    ok = [{"name": f"A{i}", "type": "alerting", "health": "ok"} for i in range(expected)]
    assert alert_rule_problems([{"name": "lstm-stream", "rules": ok}], expected) == ""
    assert "0 lstm-stream rules loaded" in alert_rule_problems([{"name": "other", "rules": ok}], expected)
    failing = [*ok[:-1], {"name": "Bad", "type": "alerting", "health": "err", "lastError": "parse error"}]
    problems = alert_rule_problems([{"name": "lstm-stream", "rules": failing}], expected)
    assert problems == "Bad: err parse error"
    waiting = [*ok[:-1], {"name": "New", "type": "alerting", "health": "unknown"}]
    assert alert_rule_problems([{"name": "lstm-stream", "rules": waiting}], expected) == "New: unknown"


def test_the_dashboard_imports_into_any_grafana() -> None:
    """No data source uid, no job name and no fixed rate window written in: a data source, job
    and instance variable choose them, and counters are only read through rate or increase."""
    text = DASHBOARD.read_text()
    dashboard = json.loads(text)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance", "partition"} <= set(variables)
    datasources = [p["datasource"] for p in dashboard["panels"] if "datasource" in p]
    datasources += [
        t["datasource"] for p in dashboard["panels"] for t in p.get("targets", []) if "datasource" in t
    ]
    assert datasources
    assert all(d["uid"] == "${datasource}" for d in datasources)
    assert 'job="' not in text
    for title, expr in panel_queries(dashboard["panels"]):
        assert "[1m]" not in expr, title
        assert "[5m]" not in expr, title
        for name in re.findall(r"\b(?:lstm_stream|process)_\w+", expr):
            assert f'{name}{{job=~"$job",instance=~"$instance"' in expr, (title, name)
        for counter in re.findall(r"\b(lstm_stream_\w+_total)\b", expr):
            assert re.search(rf"(rate|increase)\({counter}\{{", expr), (title, counter)
