"""Metrics against real tools: promtool on a live scrape, a real Prometheus scraping a live consumer,
the Grafana dashboard's metric names, and the compose stack's Prometheus config."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from consumer.core.config import LearnerConfig
from tests.conftest import REPO, require
from tests.consumer_harness import ConsumerProcess, produce, read_all, seed_tokens
from tests.consumer_harness import metric_samples as _samples

pytestmark = pytest.mark.integration

MESSAGES = 600
BAD = [b"", b"\xff", b"x" * 5000]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        require(f"{name} not installed (apt-get install prometheus)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    """A consumer that has processed the seed sequence and some bad records."""

    def __init__(self, consumer: ConsumerProcess, predictions: list[Any]) -> None:
        self.consumer = consumer
        self.predictions = predictions

    def scrape(self) -> str:
        status, body = self.consumer.get("/metrics")
        assert status == 200
        return body


@pytest.fixture(scope="module")
def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"mon-{role}-{suffix}" for role in ("in", "out", "dlq", "state")}
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(name, 1, 1) for name in names.values()])
    admin.close()
    produce(kafka_bootstrap, names["in"], [*(t.encode() for t in seed_tokens(MESSAGES)), *BAD])
    args = [
        *("--input-topic", names["in"], "--output-topic", names["out"]),
        *("--dead-letter-topic", names["dlq"], "--state-topic", names["state"]),
        *("--group-id", f"mon-{suffix}", "--instance-id", "mon"),
    ]
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path_factory.mktemp("mon") / "consumer.log", *args)
    try:
        predictions = read_all(kafka_bootstrap, names["out"], MESSAGES, timeout_s=240)
        assert len(predictions) == MESSAGES, consumer.log()[-3000:]
        yield Running(consumer, predictions)
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]


def test_promtool_finds_nothing_in_a_live_scrape(running: Running) -> None:
    promtool = _tool("promtool")
    text = running.scrape()
    assert "lstm_stream_predictions_total" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    findings = (result.stdout + result.stderr).strip()
    assert findings == "", findings


def test_scrape_counts_agree_with_the_output_topic(running: Running) -> None:
    deadline = time.monotonic() + 30  # the bad records may come in a later poll than the last prediction
    text = running.scrape()
    while _samples(text, "lstm_stream_dead_letters_total").get('{reason="invalid_utf8"}') != 1:
        assert time.monotonic() < deadline, text
        time.sleep(0.5)
        text = running.scrape()
    docs = sorted((json.loads(r.value) for r in running.predictions), key=lambda d: d["offset"])
    scored = [d["previous_hit"] for d in docs if d["previous_hit"] is not None]
    tokens = seed_tokens(MESSAGES)  # one key: the guesses of record o are for token o + 1
    own = {
        name: [d[name] == t for d, t in zip(docs, tokens[1:], strict=False)] for name in ("lstm", "baseline")
    }
    assert [d["predicted"] == t for d, t in zip(docs, tokens[1:], strict=False)] == scored
    assert _samples(text, "lstm_stream_predictions_total") == {'{partition="0"}': MESSAGES}
    assert _samples(text, "lstm_stream_prediction_hits_total") == {
        '{partition="0",predictor="published"}': sum(scored),
        '{partition="0",predictor="lstm"}': sum(own["lstm"]),
        '{partition="0",predictor="baseline"}': sum(own["baseline"]),
    }
    assert _samples(text, "lstm_stream_predictions_scored_total") == {'{partition="0"}': len(scored)}
    assert _samples(text, "lstm_stream_messages_consumed_total") == {'{partition="0"}': MESSAGES + len(BAD)}
    dead = _samples(text, "lstm_stream_dead_letters_total")
    assert dead['{reason="empty"}'] == 1
    assert dead['{reason="oversized_value"}'] == 1
    assert dead['{reason="invalid_utf8"}'] == 1
    assert sum(dead.values()) == len(BAD)
    ratio = _samples(text, "lstm_stream_rolling_hit_ratio")
    assert ratio['{partition="0",predictor="published",window="all"}'] == pytest.approx(
        sum(scored) / len(scored)
    )
    assert ratio['{partition="0",predictor="published",window="100"}'] == pytest.approx(
        sum(scored[-100:]) / 100
    )
    lstm = own["lstm"]
    assert ratio['{partition="0",predictor="lstm",window="100"}'] == pytest.approx(sum(lstm[-100:]) / 100)
    assert 0 <= ratio['{partition="0",predictor="baseline",window="1000"}'] <= 1
    losses = _samples(text, "lstm_stream_rolling_log_loss")
    assert all(0 <= value < 30 for value in losses.values())
    assert len(losses) == 9  # 3 windows x 3 predictors


def test_the_info_metric_tells_deployments_apart(running: Running) -> None:
    """Two deployments scraped by one Prometheus: their consumer group and topics label the
    info series, beside the version and the model settings."""
    (line,) = [x for x in running.scrape().splitlines() if x.startswith("lstm_stream_consumer_info{")]
    labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
    assert labels["group"].startswith("mon-")
    assert labels["input_topic"] == f"mon-in-{labels['group'][4:]}"
    assert labels["output_topic"] == f"mon-out-{labels['group'][4:]}"
    assert labels["window"] == str(LearnerConfig().window)  # the model's settings, as configured
    assert labels["version"]


def test_dashboard_queries_only_metrics_the_consumer_exports(running: Running) -> None:
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/lstm-stream.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [
        v.get("query", "") if isinstance(v.get("query"), str) else v["query"].get("query", "")
        for v in dashboard.get("templating", {}).get("list", [])
    ]
    names = {n for e in exprs for n in re.findall(r"\blstm_stream_[a-z0-9_]+", e)}
    assert len(names) >= 15
    exported = {
        line.split("{")[0].split(" ")[0] for line in running.scrape().splitlines() if not line.startswith("#")
    }
    assert sorted(names - exported) == []


def test_prometheus_config_of_the_compose_stack_is_valid() -> None:
    promtool = _tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(REPO / "deploy/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    """deploy/prometheus/alerts.yml: each alert fires on what it is for, when its `for` allows,
    and not on the healthy series beside it (alerts.test.yml), as promtool evaluates them."""
    promtool = _tool("promtool")
    rules = REPO / "deploy/prometheus"
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run([promtool, *args], cwd=rules, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr
    names = re.findall(r"^\s+- alert: (\w+)$", (rules / "alerts.yml").read_text(), re.MULTILINE)
    tested = set(re.findall(r"alertname: (\w+)", (rules / "alerts.test.yml").read_text()))
    assert len(names) == 7
    assert set(names) == tested  # every alert has a test


def test_real_prometheus_sees_the_hit_rate_the_output_shows(running: Running, tmp_path: Path) -> None:
    binary = _tool("prometheus")
    port, target = _free_port(), running.consumer.port
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: lstm-consumer\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
    )
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        docs = [json.loads(r.value) for r in running.predictions]
        scored = [d["previous_hit"] for d in docs if d["previous_hit"] is not None]
        query = (
            'sum(lstm_stream_prediction_hits_total{job="lstm-consumer",predictor="published"})'
            " / sum(lstm_stream_predictions_scored_total)"
        )
        expected = sum(scored) / len(scored)
        value = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            value = _query(port, query)
            if value is not None and value == pytest.approx(expected):
                break
            time.sleep(0.5)
        assert value == pytest.approx(expected), (
            value,
            expected,
            (tmp_path / "prometheus.log").read_text()[-2000:],
        )
        published = 'lstm_stream_rolling_hit_ratio{window="all",predictor="published"}'
        assert _query(port, published) == pytest.approx(expected)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()


def _query(port: int, query: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.load(response)["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


def _listening(pid: int) -> list[str]:
    """Local addresses of the TCP sockets process `pid` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN
                found.append(f"{table}:{fields[1]}")
    return found


def test_the_consumer_listens_on_loopback_only_by_default(running: Running) -> None:
    sockets = _listening(running.consumer.proc.pid)
    assert sockets, "the consumer should listen for /metrics"
    loopback = {"tcp": "0100007F", "tcp6": "00000000000000000000000001000000"}
    for entry in sockets:
        table, address = entry.split(":", 1)
        assert address.split(":")[0] == loopback[table], f"listening beyond loopback: {entry}"
