"""Benchmark a mark's round trip: POST accepted, applied by the learner, committed.

    .venv/bin/python bench/feedback.py [--rate 200] [--seconds 120] [--commit-interval-ms 100]

Without --bootstrap-servers it starts a broker of its own. `lstm-consumer run --anomaly-top-g 1`
learns the seed pattern over --keys keys, produced at a steady --rate for --seconds, with a
foreign token (each one new) injected at --anomaly-rate. A reader takes each anomaly record as
it is committed, after --warm-s, and marks it normal with ``POST /v1/streams/{key}/feedback``,
one mark at a time; it times the mark from the POST's start to the moment a read_committed
reader of the state topic sees a snapshot whose feedback offset passes the mark: the
transaction in which the learner applied it has committed, with the predictions made after it
(they are the next committed predictions).
Prints one JSON object: the round trip's percentiles (ms), also as commit intervals, and the
POST's own time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from bench import consumer as bench  # noqa: E402  (it takes bench/ off sys.path: see there)
from bench import producer as bench_producer  # noqa: E402
from bench import record  # noqa: E402
from bench.query import _port  # noqa: E402
from bench.streams import SEED_UNIT  # noqa: E402
from consumer.state import FEEDBACK_OFFSET_HEADER  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default="", help="a running broker (default: start one)")
    parser.add_argument("--rate", type=float, default=200.0, help="input records/s")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the input is produced")
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--anomaly-rate", type=float, default=0.01)
    parser.add_argument("--warm-s", type=float, default=10.0, help="no marks before this (learning)")
    parser.add_argument("--commit-interval-ms", type=int, default=100)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    record.add_argument(parser)
    return parser.parse_args(argv)


def stream(args: argparse.Namespace) -> list[tuple[str, str]]:
    rnd = random.Random(0)
    phase = {f"k{k}": rnd.randrange(len(SEED_UNIT)) for k in range(args.keys)}
    out: list[tuple[str, str]] = []
    for i in range(int(args.rate * args.seconds)):
        key = rnd.choice(sorted(phase))
        if rnd.random() < args.anomaly_rate:
            out.append((key, f"E{i}"))
        else:
            out.append((key, SEED_UNIT[phase[key] % len(SEED_UNIT)]))
            phase[key] += 1
    return out


def produce_steadily(bootstrap: str, topic: str, records: list[tuple[str, str]], rate: float) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    started = time.monotonic()
    try:
        for i, (key, token) in enumerate(records):
            pause = started + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            producer.send(topic, key=key.encode(), value=token.encode())
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def post(port: int, key: str, offset: int) -> dict[str, Any]:
    body = json.dumps({"offset": offset, "label": "normal"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/streams/{key}/feedback", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


class Committed:
    """The feedback offset of the partition's newest committed snapshot (read_committed): it is
    in the transaction that applied the marks before it, beside that transaction's predictions."""

    def __init__(self, bootstrap: str, state_topic: str) -> None:
        self.reader = KafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,
        )
        self.reader.assign([TopicPartition(state_topic, 0)])
        self.offset = -1

    def feedback_offset(self) -> int:
        for batch in self.reader.poll(timeout_ms=5).values():
            for r in batch:
                value = dict(r.headers or []).get(FEEDBACK_OFFSET_HEADER)
                if value is not None:
                    self.offset = max(self.offset, int(value))
        return self.offset

    def close(self) -> None:
        self.reader.close()


def marks(bootstrap: str, names: dict[str, str], port: int, args: argparse.Namespace) -> Any:
    """Mark each committed anomaly after the warm-up, one at a time: (round trip, POST) seconds."""
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", auto_offset_reset="earliest"
    )
    reader.assign([TopicPartition(names["anomalies"], 0)])
    snapshots = Committed(bootstrap, names["state"])
    out: list[tuple[float, float]] = []
    began, end = time.monotonic(), time.monotonic() + args.seconds + 5
    try:
        while time.monotonic() < end:
            for batch in reader.poll(timeout_ms=100).values():
                for anomaly in (json.loads(r.value) for r in batch):
                    if time.monotonic() - began < args.warm_s or time.monotonic() > end:
                        continue
                    started = time.monotonic()
                    sent = post(port, anomaly["key"], anomaly["offset"])
                    accepted = time.monotonic()
                    while snapshots.feedback_offset() <= sent["feedback_offset"]:
                        if time.monotonic() - started > 30:
                            raise SystemExit("bench/feedback.py: error: a mark was never committed")
                    out.append((time.monotonic() - started, accepted - started))
    finally:
        reader.close()
        snapshots.close()
    return out


def run(bootstrap: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    topics = bench.Topics(bootstrap, 1)
    names = {
        **topics.names,
        "anomalies": f"{topics.names['in']}-anomalies",
        "feedback": f"{topics.names['in']}-fb",
    }
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(names["anomalies"], 1, 1), NewTopic(names["feedback"], 1, 1)])
    finally:
        admin.close()
    log = workdir / "consumer.log"
    command = [
        sys.executable,
        *("-m", "consumer", "run", "--bootstrap-servers", bootstrap, "--http-port", "0"),
        *("--commit-interval-ms", str(args.commit_interval_ms), "--anomaly-top-g", "1"),
        *("--anomaly-topic", names["anomalies"], "--feedback-topic", names["feedback"]),
        *topics.args(),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_CONSUMER_")}
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        port = _port(log, process, args.timeout_s)
        records = stream(args)
        sender = threading.Thread(target=produce_steadily, args=(bootstrap, names["in"], records, args.rate))
        sender.start()
        times = marks(bootstrap, names, port, args)
        sender.join(120)
    finally:
        code = bench.stop_consumer(process)
    if not times:
        raise SystemExit("bench/feedback.py: error: no anomaly was marked:\n" + log.read_text()[-3000:])
    trips = sorted(t for t, _ in times)
    posts = sorted(p for _, p in times)
    interval = args.commit_interval_ms
    p99 = 1000 * bench._quantile(trips, 0.99)
    return {
        "benchmark": "feedback",
        "marks": len(times),
        "round_trip_p50_ms": round(1000 * bench._quantile(trips, 0.50), 1),
        "round_trip_p99_ms": round(p99, 1),
        "round_trip_max_ms": round(1000 * trips[-1], 1),
        "round_trip_p99_commit_intervals": round(p99 / interval, 2),
        "post_p50_ms": round(1000 * bench._quantile(posts, 0.50), 1),
        "post_p99_ms": round(1000 * bench._quantile(posts, 0.99), 1),
        "rate_msgs_per_s": args.rate,
        "commit_interval_ms": interval,
        "consumer_exit_code": code,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recorder = record.Recorder("feedback", args.record, argv)
    with (
        tempfile.TemporaryDirectory(prefix="lstm-stream-bench-feedback.") as tmp,
        bench_producer.broker(args.bootstrap_servers) as bootstrap,
    ):
        result = run(bootstrap, args, Path(tmp))
    print(json.dumps(result))
    if result["consumer_exit_code"] == 0:
        recorder.write(result)
    return 0 if result["consumer_exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
