"""A three-broker cluster losing partition leaders while the consumer learns.

The cluster (scripts/kafka up --brokers 3) runs with replication factor 3 and
min.insync.replicas=2. A producer publishes a keyed stream at a steady rate while the consumer
learns it; meanwhile the broker leading the input partition, then the one leading the output
partition, then the one leading the state partition is SIGKILLed, and started again on its data
a few seconds later (each time after the cluster is whole again, as in a rolling restart). The
consumer keeps running through it all. Afterwards the read_committed output holds exactly one
prediction per input offset, equal byte for byte to that of an uninterrupted run over the same
input, and every topic the consumer created has 3 replicas (the broker's default: it was given
no --replication-factor, the reference run was given 3).

Sizes: CLUSTER_MESSAGES (6,000), CLUSTER_RATE (100 msgs/s), CLUSTER_ROUNDS (1 round = 3 kills);
`make soak-cluster` runs 30,000 messages and 3 rounds.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from tests.conftest import KAFKA_SCRIPT, require
from tests.consumer_harness import ConsumerProcess, predictions_by_offset, read_all
from tests.test_consumer_crash import Counter

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

MESSAGES = int(os.environ.get("CLUSTER_MESSAGES", "6000"))
RATE = float(os.environ.get("CLUSTER_RATE", "100"))
ROUNDS = int(os.environ.get("CLUSTER_ROUNDS", "1"))
TRANSACTION_TIMEOUT_S = os.environ.get("CLUSTER_TRANSACTION_TIMEOUT_S", "")  # empty: the default
PARTITIONS, KEYS = 2, 6
DOWN_S = 6.0  # how long a killed broker stays down
READ_TIMEOUT_S = 300 + MESSAGES / 50


@dataclass
class Cluster:
    state: Path
    bootstrap: str

    def kafka(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(KAFKA_SCRIPT), "--dir", str(self.state), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)

    def pids(self) -> dict[int, int]:
        """node id -> PID of the running nodes, from `scripts/kafka status`."""
        out = {}
        for line in self.kafka("status").stdout.splitlines():
            words = line.split()
            pid = [w for w in words if w.startswith("pid=")]
            if words[:1] == ["node"] and pid:
                out[int(words[1])] = int(pid[0].removeprefix("pid="))
        return out

    def kill(self, node: int) -> None:
        pid = self.pids()[node]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while node in self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node not in self.pids(), f"node {node} (pid {pid}) survived SIGKILL"

    def restart(self) -> None:
        result = self.kafka("up")
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("cluster")
    result = subprocess.run(
        [sys.executable, str(KAFKA_SCRIPT), "--dir", str(state), "up", "--brokers", "3"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    last = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
    if result.returncode != 0 or not last or not last[0].startswith("bootstrap="):
        require(f"could not start a three-broker cluster: {result.stderr.strip()[-2000:]}")
    cluster = Cluster(state, last[0].removeprefix("bootstrap="))
    try:
        yield cluster
    finally:
        pids = cluster.pids()
        cluster.kafka("down", "--purge", timeout_s=120)
        alive = [pid for pid in pids.values() if _alive(pid)]
        assert not alive, f"`scripts/kafka down` left nodes running: {alive}"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_status_lists_every_node_and_up_restarts_only_the_stopped_one(cluster: Cluster) -> None:
    status = cluster.kafka("status")
    assert status.returncode == 0, status.stdout
    lines = status.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [["node", str(n), "running"] for n in (1, 2, 3)]
    ports = [line.split("port=")[1].split()[0] for line in lines]
    assert ",".join(f"127.0.0.1:{port}" for port in ports) == cluster.bootstrap
    before = cluster.pids()
    assert len(set(before.values())) == 3
    cluster.kill(2)
    stopped = cluster.kafka("status")
    assert stopped.returncode == 3
    assert "node 2 not running" in stopped.stdout
    cluster.restart()
    after = cluster.pids()
    assert (after[1], after[3]) == (before[1], before[3])  # the running nodes are left alone
    assert after[2] != before[2]


def _describe(admin: KafkaAdminClient, topic: str) -> list[dict[str, Any]]:
    found = [t for t in admin.describe_topics([topic]) if t.get("name") == topic]
    return list(found[0]["partitions"]) if found else []


def _leader(admin: KafkaAdminClient, topic: str, partition: int = 0) -> int:
    for p in _describe(admin, topic):
        if p["partition_index"] == partition and p["leader_id"] >= 0:
            return int(p["leader_id"])
    raise AssertionError(f"{topic}[{partition}] has no leader")


def _whole(admin: KafkaAdminClient, topics: list[str], timeout_s: float = 120) -> None:
    """Wait until every partition of `topics` has all 3 replicas in sync again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if all(len(p["isr_nodes"]) == 3 for t in topics for p in _describe(admin, t)):
                return
        except Exception:  # metadata from a broker that is still catching up: ask again
            pass
        time.sleep(0.5)
    raise AssertionError(f"the cluster's replicas of {topics} did not catch up within {timeout_s} s")


def test_killing_partition_leaders_loses_and_duplicates_nothing(cluster: Cluster, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CLUSTER_SEED", "3")))
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","), request_timeout_ms=30_000)
    names = {kind: f"{kind}-{os.getpid()}" for kind in ("in", "out", "dlq", "state", "ref-out", "ref-dlq")}
    admin.create_topics([NewTopic(names["in"], PARTITIONS, 3)])
    # --replication-factor not given: the topics get the broker's default (3 on this cluster)
    interrupted = [
        *("--input-topic", names["in"], "--output-topic", names["out"]),
        *("--dead-letter-topic", names["dlq"], "--state-topic", names["state"]),
        *("--group-id", "failover", "--instance-id", "failover", "--max-poll-records", "100"),
        *(["--transaction-timeout-s", TRANSACTION_TIMEOUT_S] if TRANSACTION_TIMEOUT_S else []),
    ]
    producer = subprocess.Popen(
        [
            *(sys.executable, "-m", "producer", "pattern", "--bootstrap-servers", cluster.bootstrap),
            *("--topic", names["in"], "--keys", str(KEYS), "--count", str(MESSAGES), "--rate", str(RATE)),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    consumer = ConsumerProcess(cluster.bootstrap, tmp_path / "failover.log", *interrupted)
    counter: Counter | None = None
    kills: list[dict[str, Any]] = []
    try:
        read_all(cluster.bootstrap, names["out"], 100, timeout_s=240)  # learning is under way
        counter = Counter(cluster.bootstrap, names["out"])
        counter.start()
        for _ in range(ROUNDS):
            for kind in ("in", "out", "state"):
                _whole(admin, [names["in"], names["out"], names["state"]])
                seen = counter.count
                assert counter.wait_beyond(seen + 50, timeout_s=120), consumer.log()[-3000:]
                time.sleep(rng.uniform(0.0, 2.0))
                leader = _leader(admin, names[kind])
                killed_at = time.monotonic()
                cluster.kill(leader)
                kills.append({"topic": kind, "node": leader, "output_before": counter.count, "at": killed_at})
                time.sleep(DOWN_S)
                cluster.restart()
        assert producer.wait(timeout=MESSAGES / RATE + 300) == 0, producer.communicate()[0][-3000:]
        records = read_all(cluster.bootstrap, names["out"], MESSAGES, timeout_s=READ_TIMEOUT_S)
        assert consumer.proc.poll() is None, consumer.log()[-3000:]  # it kept running through it all
    finally:
        if producer.poll() is None:
            producer.kill()
        if counter is not None:
            counter.stop()
        assert consumer.stop() == 0, consumer.log()[-3000:]
    replicas = {k: {len(p["replica_nodes"]) for p in _describe(admin, names[k])} for k in ("out", "state")}

    reference = ConsumerProcess(
        cluster.bootstrap,
        tmp_path / "reference.log",
        *("--input-topic", names["in"], "--output-topic", names["ref-out"]),
        *("--dead-letter-topic", names["ref-dlq"], "--group-id", "reference", "--instance-id", "reference"),
        *("--state-topic", f"ref-state-{os.getpid()}", "--replication-factor", "3"),
    )
    try:
        expected = read_all(cluster.bootstrap, names["ref-out"], MESSAGES, timeout_s=READ_TIMEOUT_S)
    finally:
        assert reference.stop() == 0, reference.log()[-3000:]
    admin.close()

    got, want = predictions_by_offset(records), predictions_by_offset(expected)
    assert len(want) == MESSAGES
    missing = set(want) - set(got)
    duplicated = [offset for offset, values in got.items() if len(values) > 1]
    assert (len(missing), len(duplicated)) == (0, 0), f"{kills}: missing {missing}, duplicated {duplicated}"
    differing = [offset for offset in want if got[offset] != want[offset]]
    assert not differing, f"{len(differing)} predictions differ, first at {differing[0]}"
    assert replicas == {"out": {3}, "state": {3}}
    ends = [kill["at"] for kill in kills[1:]] + [time.monotonic()]
    for kill, end in zip(kills, ends, strict=True):  # the outage: the longest wait for a commit
        killed_at = kill.pop("at")
        times = [killed_at, *(t for t in counter.grew if killed_at < t < end)]
        kill["stalled_s"] = round(max(b - a for a, b in itertools.pairwise(times)), 1) if times[1:] else None
    delays = [int(d) for d in re.findall(r"Kafka session failed, restarting in (\d+) s", consumer.log())]
    # The backoff starts again from 1 s once a session has committed: no 30 s waits after a few kills.
    assert max(delays, default=0) <= 8, delays
    print(
        "cluster summary:",
        json.dumps(
            {
                "messages": MESSAGES,
                "rate": RATE,
                "kills": kills,
                "missing": len(missing),
                "duplicated": len(duplicated),
                "byte_identical": not differing,
                "consumer_session_restarts": len(delays),
                "restart_delays_s": delays,
            }
        ),
    )
