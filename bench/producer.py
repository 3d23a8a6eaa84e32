"""Benchmark: unthrottled producer throughput into a real broker, printed as one JSON object.

    .venv/bin/python bench/producer.py [--bootstrap-servers HOST:PORT] [--count N]
        [--linger-ms MS] [--batch-size BYTES] [--compression-type none|gzip|...]

It publishes the seed's pattern through the same `Publisher` as `lstm-producer pattern` (idempotent,
acks=all, delivery counted) to a fresh topic, and times it from the first send to the end of the
flush. Without --bootstrap-servers it starts a broker of its own with scripts/kafka in a temporary
directory and stops it (down --purge) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO / "scripts" / "kafka"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Unthrottled lstm-producer throughput (JSON on stdout).")
    parser.add_argument("--bootstrap-servers", default="", help="a running broker (default: start one)")
    parser.add_argument("--count", type=int, default=200_000, help="messages to publish")
    parser.add_argument("--linger-ms", type=int, default=None, help="default: the producer's default")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the producer's default")
    parser.add_argument("--compression-type", default=None, help="default: the producer's default")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the fresh topic")
    parser.add_argument("--keys", type=int, default=1, help="pattern streams (keys)")
    parser.add_argument(
        "--record", type=Path, metavar="FILE", help="also write the result to FILE (see bench/record.py)"
    )
    return parser.parse_args(argv)


@contextmanager
def broker(bootstrap: str) -> Iterator[str]:
    """The given broker, or one started for the benchmark and stopped after it."""
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="lstm-stream-bench-kafka.") as state:
        up = subprocess.run(
            [sys.executable, str(KAFKA_SCRIPT), "--dir", state, "up"],
            capture_output=True,
            text=True,
            check=False,
        )
        last = (up.stdout.strip().splitlines() or [""])[-1]
        try:
            if up.returncode != 0 or not last.startswith("bootstrap="):
                raise SystemExit(
                    f"bench/producer.py: error: could not start Kafka: {up.stderr.strip()[-2000:]}"
                )
            yield last.removeprefix("bootstrap=")
        finally:
            down = [sys.executable, str(KAFKA_SCRIPT), "--dir", state, "down", "--purge"]
            subprocess.run(down, capture_output=True, check=False)


def run(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    # Imported here: this file's directory comes first on sys.path and its name shadows the package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.modules.pop("producer", None)
    from producer.publisher import Publisher
    from producer.settings import PatternSettings
    from producer.sources import Source, pattern_records

    tuning = {
        name: value
        for name, value in (
            ("linger_ms", args.linger_ms),
            ("batch_size", args.batch_size),
            ("compression_type", args.compression_type),
        )
        if value is not None
    }
    settings = PatternSettings(
        bootstrap_servers=bootstrap,
        topic=f"bench-producer-{time.time_ns()}",
        create_topic=True,
        partitions=args.partitions,
        keys=args.keys,
        count=args.count,
        quiet=True,
        **tuning,
    )
    records = pattern_records(settings.unit(), keys=settings.keys, seed=settings.seed)
    stats = Publisher(settings).run(Source(records, settings.count))
    return {
        "benchmark": "producer",
        "count": stats.sent,
        "delivered": stats.delivered,
        "failed": stats.failed,
        "seconds": round(stats.seconds, 3),
        "msgs_per_s": round(stats.msgs_per_s, 1),
        "linger_ms": settings.linger_ms,
        "batch_size": settings.batch_size,
        "compression_type": settings.compression_type,
        "acks": "all",
        "enable_idempotence": True,
        "partitions": settings.partitions,
        "keys": settings.keys,
        "value_format": settings.value_format,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),  # the machine may be shared: context for the figure
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if str(REPO) not in sys.path:  # run as a script, bench/ is on sys.path and not the checkout
        sys.path.insert(0, str(REPO))
    from bench import record

    recorder = record.Recorder("producer", args.record, argv)
    with broker(args.bootstrap_servers) as bootstrap:
        result = run(args, bootstrap)
    print(json.dumps(result))
    ok = result["failed"] == 0 and result["delivered"] == result["count"]
    if ok:
        recorder.write(result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
