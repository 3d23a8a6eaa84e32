"""Benchmark the consumer service end to end on a real broker, beside its own learner core.

    .venv/bin/python bench/consumer.py [--partitions 2] [--keys 1000] [--records 20000]
        [--guarantee exactly_once] [--workers 0] [--latency-rate 200] [--latency-seconds 20]

Without --bootstrap-servers it starts a broker of its own (scripts/kafka, as bench/producer.py).
Two phases, each on fresh topics and a fresh group, with `lstm-consumer run` as a subprocess:

1. Throughput. N records of the seed pattern over K keys are produced into P partitions first,
   then the consumer is started. e2e_msgs_per_s = N / the time from the first to the last
   prediction readable by a read_committed consumer (so the compile at start-up is not in it).
   learner_msgs_per_s: the same records, partition by partition, read back from the input topic,
   through the learner core alone in this process (one thread, calls of --max-poll-records, as
   the service makes them), after the consumer stopped. Their ratio is what the service adds
   or loses: Kafka, JSON, transactions, metrics, and the partitions learned in parallel.
2. Latency. The consumer runs first; records are produced at a steady --latency-rate for
   --latency-seconds; each one's latency is from its produce timestamp (CreateTime) to its
   prediction being readable by a read_committed consumer. The first second is warm-up.

Prints one JSON object with both, the guarantee, P, K, N, the workers, the cores and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# This file's name shadows the consumer package: its directory must not come first on sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))
sys.modules.pop("consumer", None)

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

from bench import producer as bench_producer  # noqa: E402
from bench import record as bench_record  # noqa: E402
from producer.sources import pattern_records  # noqa: E402
from producer.spec import SEED_SPEC, parse_spec  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The consumer service end to end (JSON on stdout).")
    parser.add_argument("--bootstrap-servers", default="", help="a running broker (default: start one)")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--guarantee", default="exactly_once", choices=("exactly_once", "at_least_once"))
    parser.add_argument("--workers", type=int, default=0, help="--workers of the consumer (0: its default)")
    parser.add_argument("--commit-interval-ms", type=int, default=100)
    parser.add_argument("--max-poll-records", type=int, default=500)
    parser.add_argument("--latency-rate", type=float, default=200.0, help="records/s in the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="0: no latency phase")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="give up a phase after this long")
    bench_record.add_argument(parser)
    return parser.parse_args(argv)


class Topics:
    def __init__(self, bootstrap: str, partitions: int) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.names = {role: f"bench-{role}-{suffix}" for role in ("in", "out", "dlq", "state")}
        self.group = f"bench-{suffix}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.create_topics(
                [NewTopic(name, partitions, 1) for role, name in self.names.items() if role != "state"]
                + [NewTopic(self.names["state"], partitions, 1, topic_configs={"cleanup.policy": "compact"})]
            )
        finally:
            admin.close()

    def args(self) -> list[str]:
        n = self.names
        return [
            *("--input-topic", n["in"], "--output-topic", n["out"]),
            *("--dead-letter-topic", n["dlq"], "--state-topic", n["state"]),
            *("--group-id", self.group, "--instance-id", "bench"),
        ]


def start_consumer(
    bootstrap: str, topics: Topics, args: argparse.Namespace, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        *("-m", "consumer", "run", "--bootstrap-servers", bootstrap, "--http-port", "0"),
        *("--processing-guarantee", args.guarantee, "--commit-interval-ms", str(args.commit_interval_ms)),
        *("--max-poll-records", str(args.max_poll_records), "--status-interval-s", "5"),
        *(["--workers", str(args.workers)] if args.workers else []),
        *topics.args(),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_CONSUMER_")}
    if "LSTM_CONSUMER_COMPILE_CACHE_DIR" in os.environ:
        env["LSTM_CONSUMER_COMPILE_CACHE_DIR"] = os.environ["LSTM_CONSUMER_COMPILE_CACHE_DIR"]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)


def stop_consumer(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def reader(bootstrap: str, topic: str) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    partitions: set[int] = set()
    while not partitions:
        partitions = consumer.partitions_for_topic(topic) or set()
        time.sleep(0.05)
    consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
    return consumer


def produce(
    bootstrap: str, topic: str, records: list[tuple[str, str]], rate: float = 0.0
) -> dict[tuple[int, int], int]:
    """Send the records (at `rate` per second if > 0); {(partition, offset): CreateTime ms}."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0 if rate else 20)
    try:
        futures, started = [], time.monotonic()
        for i, (key, token) in enumerate(records):
            if rate:
                pause = started + i / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            futures.append(producer.send(topic, key=key.encode(), value=token.encode()))
        producer.flush(timeout=120)
        done = [future.get(timeout=60) for future in futures]
        return {(m.partition, m.offset): m.timestamp for m in done}
    finally:
        producer.close(timeout=10)


def read_predictions(
    bootstrap: str, topic: str, count: int, timeout_s: float, process: subprocess.Popen[bytes], log: Path
) -> list[tuple[float, dict[str, Any]]]:
    """(wall-clock time first readable, prediction) for `count` committed predictions."""
    consumer = reader(bootstrap, topic)
    seen: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < count:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(
                    f"bench/consumer.py: error: {len(seen)} of {count} predictions; the consumer's log:\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            for batch in consumer.poll(timeout_ms=50).values():
                now = time.time()
                seen.extend((now, json.loads(record.value)) for record in batch)
        return seen
    finally:
        consumer.close()


def learner_rate(bootstrap: str, topic: str, count: int, max_poll_records: int) -> float:
    """The same records, read back by partition, through the learner core alone (one thread)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from consumer.core import compile_cache

    compile_cache.enable(os.environ.get("LSTM_CONSUMER_COMPILE_CACHE_DIR", str(compile_cache.DEFAULT_DIR)))
    from consumer.core.config import LearnerConfig
    from consumer.core.learner import Learner

    consumer = reader(bootstrap, topic)
    by_partition: dict[int, list[tuple[str | None, str]]] = {}
    got = 0
    while got < count:
        for tp, batch in consumer.poll(timeout_ms=500).items():
            by_partition.setdefault(tp.partition, []).extend(
                (r.key.decode() if r.key else None, r.value.decode()) for r in batch
            )
            got += len(batch)
    consumer.close()
    config = LearnerConfig()
    Learner(config, min_batch=max_poll_records).program.warm_up(max_poll_records)
    learners = {p: Learner(config, min_batch=max_poll_records) for p in by_partition}
    started = time.perf_counter()
    for p, records in sorted(by_partition.items()):
        for start in range(0, len(records), max_poll_records):
            learners[p].learn_predict_many(records[start : start + max_poll_records])
    return count / (time.perf_counter() - started)


def throughput(bootstrap: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    topics = Topics(bootstrap, args.partitions)
    unit = parse_spec(SEED_SPEC)
    records = list(_take(pattern_records(unit, keys=args.keys, seed=0), args.records))
    produce(bootstrap, topics.names["in"], records)
    log = workdir / "throughput.log"
    started = time.monotonic()
    process = start_consumer(bootstrap, topics, args, log)
    try:
        seen = read_predictions(bootstrap, topics.names["out"], args.records, args.timeout_s, process, log)
    finally:
        code = stop_consumer(process)
    first_prediction_s = seen[0][0] - (time.time() - (time.monotonic() - started))
    span = seen[-1][0] - seen[0][0]
    hits = [d["previous_hit"] for _, d in seen[-1000:] if d["previous_hit"] is not None]
    learner = learner_rate(bootstrap, topics.names["in"], args.records, args.max_poll_records)
    e2e = args.records / span if span > 0 else float("inf")
    return {
        "e2e_msgs_per_s": round(e2e, 1),
        "learner_msgs_per_s": round(learner, 1),
        "e2e_to_learner_ratio": round(e2e / learner, 3),
        "start_to_first_prediction_s": round(first_prediction_s, 2),
        "hit_rate_last_1000": round(sum(hits) / len(hits), 4) if hits else None,
        "throughput_consumer_exit_code": code,
    }


def latency(bootstrap: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    topics = Topics(bootstrap, args.partitions)
    log = workdir / "latency.log"
    process = start_consumer(bootstrap, topics, args, log)
    unit = parse_spec(SEED_SPEC)
    try:
        warm = list(_take(pattern_records(unit, keys=args.keys, seed=1), args.partitions * 4))
        produce(
            bootstrap, topics.names["in"], warm
        )  # the consumer is compiled and assigned once these come out
        read_predictions(bootstrap, topics.names["out"], len(warm), args.timeout_s, process, log)
        count = int(args.latency_rate * args.latency_seconds)
        stream = list(_take(pattern_records(unit, keys=args.keys, seed=2), count))
        sent: dict[tuple[int, int], int] = {}
        sender = threading.Thread(
            target=lambda: sent.update(produce(bootstrap, topics.names["in"], stream, args.latency_rate))
        )
        sender.start()
        seen = read_predictions(
            bootstrap, topics.names["out"], len(warm) + count, args.timeout_s, process, log
        )
        sender.join(120)
    finally:
        code = stop_consumer(process)
    latencies = _latencies(seen, sent, skip=int(args.latency_rate))  # the first second: the rate settles
    return {
        "latency_p50_ms": round(_quantile(latencies, 0.50), 1),
        "latency_p99_ms": round(_quantile(latencies, 0.99), 1),
        "latency_max_ms": round(latencies[-1], 1),
        "latency_records": len(latencies),
        "latency_rate_msgs_per_s": args.latency_rate,
        "latency_consumer_exit_code": code,
    }


def _latencies(
    seen: list[tuple[float, dict[str, Any]]], sent: dict[tuple[int, int], int], skip: int
) -> list[float]:
    timed = sorted(
        (sent[(d["partition"], d["offset"])], at) for at, d in seen if (d["partition"], d["offset"]) in sent
    )
    return sorted((at - created / 1000) * 1000 for created, at in timed[skip:])


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def _take(records: Any, count: int) -> Any:
    for i, record in enumerate(records):
        if i >= count:
            return
        yield record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recorder = bench_record.Recorder(f"consumer-{args.partitions}p", args.record, argv)
    with (
        tempfile.TemporaryDirectory(prefix="lstm-stream-bench-consumer.") as tmp,
        bench_producer.broker(args.bootstrap_servers) as bootstrap,
    ):
        workdir = Path(tmp)
        result: dict[str, Any] = {"benchmark": "consumer"}
        result.update(throughput(bootstrap, args, workdir))
        if args.latency_seconds > 0:
            result.update(latency(bootstrap, args, workdir))
        from consumer.settings import usable_cpus

        result.update(
            {
                "guarantee": args.guarantee,
                "partitions": args.partitions,
                "keys": args.keys,
                "records": args.records,
                "workers": args.workers or usable_cpus(),
                "commit_interval_ms": args.commit_interval_ms,
                "max_poll_records": args.max_poll_records,
                "cores": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "python": platform.python_version(),
            }
        )
    print(json.dumps(result))
    codes = [result.get("throughput_consumer_exit_code"), result.get("latency_consumer_exit_code", 0)]
    if codes == [0, 0]:
        recorder.write(result)
    return 0 if codes == [0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())
