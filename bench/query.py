"""Benchmark the query endpoint while the consumer learns at full speed, side by side with none.

    .venv/bin/python bench/query.py [--rounds 3] [--rate 200] [--records 40000] [--keys 1000]

Without --bootstrap-servers it starts a broker of its own. Each round runs the consumer twice on
a backlog, alternately without and with queries (fresh topics and group each time): N records
of the seed pattern over K keys in P partitions are produced first, then `lstm-consumer run`
starts and its e2e throughput is measured as in bench/consumer.py (first to last prediction
readable by a read_committed reader). In the queried runs a client process sends
``GET /v1/streams/{key}/next`` for random keys of the backlog at a steady --rate from the first
prediction to the last, one connection per request, and times each from connect to the end of
the body. Prints one JSON object: the throughput of each run, the median of each kind and the
drop, the queries' latency percentiles (ms) and status counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import consumer as bench  # noqa: E402  (it takes bench/ off sys.path: see there)
from bench import producer as bench_producer  # noqa: E402
from bench import record  # noqa: E402
from producer.sources import pattern_records  # noqa: E402
from producer.spec import SEED_SPEC, parse_spec  # noqa: E402

PORT_LINE = re.compile(r"serving /healthz, /readyz and /metrics on http://[\d.]+:(\d+)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The query endpoint under load (JSON on stdout).")
    parser.add_argument("--bootstrap-servers", default="", help="a running broker (default: start one)")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=200.0, help="queries per second")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs, without and with queries")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    record.add_argument(parser)
    args = parser.parse_args(argv)
    # What bench/consumer.py's helpers read.
    args.guarantee, args.workers, args.commit_interval_ms, args.max_poll_records = "exactly_once", 0, 100, 500
    return args


class Client:
    """Queries at a steady rate from a process of its own (so that its timing never waits for this
    process's reader of predictions): `bench/query.py --client PORT KEYS-FILE RATE SEED` until its
    stdin closes, then one JSON line of each latency (s), each status and the seconds it ran."""

    def __init__(self, port: int, keys: list[str], rate: float, seed: int, workdir: Path) -> None:
        listing = workdir / f"keys-{seed}.txt"
        listing.write_text("".join(urllib.parse.quote(key, safe="") + "\n" for key in keys))
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--client", str(port), str(listing), str(rate), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def finish(self) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=60)
        report: dict[str, Any] = json.loads(out)
        return report


def _query(port: int, request: bytes) -> int:
    """One request on a connection of its own, read to the end: its status (0: no answer). Raw
    sockets, not urllib: the client's own cost (about 1 ms of CPU a request with urllib) would
    otherwise take a share of this machine's two cores from the consumer being measured."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        json.loads(body)
    except (OSError, ValueError, IndexError):
        return 0
    return status


def client_main(port: int, listing: Path, rate: float, seed: int) -> int:
    keys = listing.read_text().split()
    chooser = random.Random(seed)
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started, sent = time.monotonic(), 0
    while not stop.is_set():
        pause = started + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        request = f"GET /v1/streams/{chooser.choice(keys)}/next HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
        began = time.perf_counter()
        status = _query(port, request)
        latencies.append(time.perf_counter() - began)
        statuses[status] = statuses.get(status, 0) + 1
        sent += 1
    seconds = time.monotonic() - started
    print(json.dumps({"latencies": latencies, "statuses": statuses, "seconds": seconds}))
    return 0


def one_run(
    bootstrap: str, args: argparse.Namespace, workdir: Path, queried: bool, run: int
) -> dict[str, Any]:
    topics = bench.Topics(bootstrap, args.partitions)
    unit = parse_spec(SEED_SPEC)
    records = list(bench._take(pattern_records(unit, keys=args.keys, seed=run), args.records))
    bench.produce(bootstrap, topics.names["in"], records)
    log = workdir / f"run-{run}.log"
    process = bench.start_consumer(bootstrap, topics, args, log)
    client = None
    try:
        port = _port(log, process, args.timeout_s)
        if queried:
            client = Client(port, sorted({key for key, _ in records}), args.rate, run, workdir)
        seen = bench.read_predictions(
            bootstrap, topics.names["out"], args.records, args.timeout_s, process, log
        )
    finally:
        queries = client.finish() if client is not None else None
        code = bench.stop_consumer(process)
    span = seen[-1][0] - seen[0][0]
    out: dict[str, Any] = {
        "queried": queried,
        "e2e_msgs_per_s": round(args.records / span, 1),
        "exit_code": code,
    }
    if queries is not None:
        out["latencies"] = queries["latencies"]
        out["statuses"] = queries["statuses"]
        out["query_seconds"] = queries["seconds"]
    return out


def _port(log: Path, process: Any, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        match = PORT_LINE.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        time.sleep(0.1)
    raise SystemExit("bench/query.py: error: the consumer never served HTTP:\n" + log.read_text()[-3000:])


def summary(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    plain = [r["e2e_msgs_per_s"] for r in runs if not r["queried"]]
    loaded = [r["e2e_msgs_per_s"] for r in runs if r["queried"]]
    latencies: list[float] = sorted(x for r in runs if r["queried"] for x in r["latencies"])
    statuses: dict[str, int] = {}
    for r in runs:
        for status, count in r.get("statuses", {}).items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    seconds = sum(r.get("query_seconds", 0.0) for r in runs)
    median_plain, median_loaded = float(statistics.median(plain)), float(statistics.median(loaded))

    def ms(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {
        "benchmark": "query",
        "e2e_msgs_per_s_without_queries": plain,
        "e2e_msgs_per_s_with_queries": loaded,
        "median_without_queries": median_plain,
        "median_with_queries": median_loaded,
        "throughput_drop": round(1 - median_loaded / median_plain, 4),
        "queries": len(latencies),
        "queries_per_s": round(len(latencies) / seconds, 1) if seconds else None,
        "query_p50_ms": ms(0.5),
        "query_p99_ms": ms(0.99),
        "query_max_ms": round(1000 * latencies[-1], 2),
        "statuses": statuses,
        "rate": args.rate,
        "records": args.records,
        "keys": args.keys,
        "partitions": args.partitions,
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        return client_main(int(argv[1]), Path(argv[2]), float(argv[3]), int(argv[4]))
    args = parse_args(argv)
    recorder = record.Recorder("query", args.record, argv)
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="lstm-stream-bench-query.") as tmp,
        bench_producer.broker(args.bootstrap_servers) as bootstrap,
    ):
        for run in range(2 * args.rounds):  # without, with, without, with: side by side
            runs.append(one_run(bootstrap, args, Path(tmp), queried=run % 2 == 1, run=run))
            print(f"bench/query.py: run {run}: {runs[-1]['e2e_msgs_per_s']} msgs/s", file=sys.stderr)
    result = summary(runs, args)
    print(json.dumps(result))
    ok = all(r["exit_code"] == 0 for r in runs) and "0" not in result["statuses"]
    if ok:
        recorder.write(result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
