"""What scripts/compose-test checks on a running stack: the predictions topic and Prometheus.

`Predictions` reads the committed predictions through the published Kafka port; the Prometheus
checks go through its HTTP API: the consumer replicas among its targets, and every panel query
of the Grafana dashboard with its variables filled in. A check returns "" when it holds, else
what is missing, so `wait_until` can poll it.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from compose_stack import REPO, StackError
from kafka import KafkaConsumer, TopicPartition

__all__ = [
    "DASHBOARD",
    "Predictions",
    "consumer_targets",
    "dashboard_failures",
    "expand",
    "learned",
    "panel_queries",
    "wait_until",
]

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "lstm-stream.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
INSTANCE_HEADER = "lstm-stream.instance"
LAST, HITS = 1000, 0.99
DASHBOARD_QUERIES: set[str] = set()  # every query evaluated, for the summary
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "15m"}


# -- the predictions topic ---------------------------------------------------------------------------


@dataclass
class Predictions:
    """Every committed prediction read so far, by input partition: (input offset, hit, instance)."""

    bootstrap: str
    topic: str = "predictions"
    by_partition: dict[int, list[tuple[int, bool | None, str]]] = field(default_factory=dict)
    _consumer: Any = None

    def catch_up(self, timeout_s: float = 60.0) -> None:
        """Read up to the topic's current end (its last stable offset: read_committed)."""
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            partitions = self._consumer.partitions_for_topic(self.topic) or set()
            self._consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        tps = self._consumer.assignment()
        end = self._consumer.end_offsets(list(tps))
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in self._consumer.poll(timeout_ms=500, max_records=5000).values():
                for record in batch:
                    doc = json.loads(record.value)
                    instance = dict(record.headers).get(INSTANCE_HEADER, b"?").decode()
                    self.by_partition.setdefault(doc["partition"], []).append(
                        (doc["offset"], doc["previous_hit"], instance)
                    )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()

    def offsets(self, partition: int) -> list[int]:
        return sorted(offset for offset, _, _ in self.by_partition.get(partition, []))

    def hit_ratio(self, partition: int) -> float:
        """Hits over the last 1,000 predictions of the partition (by input offset)."""
        rows = sorted(self.by_partition.get(partition, []))[-LAST:]
        return sum(1 for _, hit, _ in rows if hit) / LAST

    def instances(self, since: dict[int, int] | None = None) -> set[str]:
        """The instances behind the predictions (those of input offsets past `since`, if given)."""
        return {
            instance
            for p, rows in self.by_partition.items()
            for offset, _, instance in rows
            if since is None or offset >= since.get(p, 0)
        }

    def summary(self) -> dict[str, Any]:
        return {
            str(p): {"predictions": len(rows), f"hits_last_{LAST}": round(self.hit_ratio(p), 4)}
            for p, rows in sorted(self.by_partition.items())
        }


def wait_until(what: str, check: Callable[[], str], timeout_s: float, every_s: float = 5.0) -> None:
    """Call `check` until it returns "" (done); otherwise it says what is still missing."""
    deadline = time.monotonic() + timeout_s
    while (missing := check()) and time.monotonic() < deadline:
        time.sleep(every_s)
    if missing:
        raise StackError(f"{what}: not within {timeout_s:.0f} s: {missing}")


def learned(predictions: Predictions, partitions: int, replicas: set[str], since: dict[int, int]) -> str:
    """ "" when every partition holds >= 1,000 predictions past `since`-free history with >= 99% hits
    over its last 1,000, and every replica made some of those past `since`; else what is missing."""
    predictions.catch_up()
    missing = []
    for p in range(partitions):
        rows = predictions.by_partition.get(p, [])
        if len(rows) < LAST or predictions.hit_ratio(p) < HITS:
            missing.append(f"partition {p}: {len(rows)} predictions, {predictions.hit_ratio(p):.1%} hits")
    absent = replicas - predictions.instances(since)
    if absent:
        missing.append(f"no prediction yet from replica(s) {', '.join(sorted(absent))}")
    return "; ".join(missing)


# -- Prometheus --------------------------------------------------------------------------------------


def prometheus_get(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise StackError(f"Prometheus {path}: {body}")
    return body["data"]


def consumer_targets(port: int, addresses: set[str]) -> str:
    targets = [
        t
        for t in prometheus_get(port, "/api/v1/targets")["activeTargets"]
        if t["labels"]["job"] == "lstm-consumer"
    ]
    found = {t["labels"]["instance"]: t["health"] for t in targets}
    if set(found) != addresses or set(found.values()) != {"up"}:
        return f"targets {found}, replicas at {sorted(addresses)}"
    return ""


def alert_rule_problems(groups: list[dict[str, Any]], expected: int) -> str:
    """ "" when the `lstm-stream` group of Prometheus's /api/v1/rules holds `expected` alerting
    rules, each evaluated at least once and healthy; else what is wrong."""
    rules = [r for g in groups if g.get("name") == "lstm-stream" for r in g.get("rules", [])]
    if len(rules) != expected:
        return f"{len(rules)} lstm-stream rules loaded, expected {expected}"
    unhealthy = [
        f"{r.get('name')}: {r.get('health')} {r.get('lastError', '')}".strip()
        for r in rules
        if r.get("type") != "alerting" or r.get("health") != "ok"
    ]
    return "; ".join(unhealthy)


def alert_rules(port: int) -> str:
    """The stack's Prometheus loaded deploy/prometheus/alerts.yml and evaluates every rule."""
    expected = ALERTS.read_text().count("- alert: ")
    return alert_rule_problems(prometheus_get(port, "/api/v1/rules")["groups"], expected)


def panel_queries(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every target, rows' nested panels included."""
    for panel in panels:
        yield from panel_queries(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel.get("title", "?"), target["expr"]


SCOPING = ("job", "instance")  # variables checked at "All" only: each instance holds some partitions


def variable_values(port: int, variable: dict[str, Any]) -> list[str]:
    """The values a `label_values(metric, label)` variable offers: its "All" value, then each one
    (the variables it depends on at "All"). Job and instance: "All" only, as every partition
    is then some instance's."""
    query = variable.get("definition") or variable.get("query", {}).get("query", "")
    metric, label = (part.strip() for part in query.removeprefix("label_values(").rstrip(")").rsplit(",", 1))
    series = prometheus_get(port, "/api/v1/series", **{"match[]": re.sub(r"\$\w+", ".*", metric)})
    values = sorted({s[label] for s in series if label in s})
    if not values:
        raise StackError(f"dashboard variable ${variable['name']}: {query} has no value")
    every = [variable["allValue"]] if variable.get("includeAll") else []
    return every if variable["name"] in SCOPING and every else every + values


def dashboard_failures(port: int) -> list[str]:
    """Each panel query, every variable filled in each way, that returns no finite value."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {
        v["name"]: variable_values(port, v)
        for v in dashboard.get("templating", {}).get("list", [])
        if v.get("type") == "query"  # not the data source: no query names it
    }
    failures = []
    for title, expr in panel_queries(dashboard["panels"]):
        for filled in expand(expr, variables):
            DASHBOARD_QUERIES.add(filled)
            result = prometheus_get(port, "/api/v1/query", query=filled)["result"]
            values = [float(s["value"][1]) for s in result]
            if not any(math.isfinite(v) for v in values):
                failures.append(f"{title}: {filled} -> {values or 'no series'}")
    return failures


def expand(expr: str, variables: dict[str, list[str]]) -> list[str]:
    for name, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(name, value)
    out = [expr]
    for name, values in variables.items():
        if f"${name}" in expr:
            if not values:
                raise StackError(f"dashboard variable ${name} has no value")
            out = [e.replace(f"${name}", v) for e in out for v in values]
    unknown = [e for e in out if "$" in e]
    if unknown:
        raise StackError(f"dashboard query with an unknown variable: {unknown[0]}")
    return list(dict.fromkeys(out))
