"""Predictions applications use: top-k, surprise and anomalies, and the query per stream.

Against the real broker: foreign tokens injected into the seed stream are published to the
anomaly topic (every one, and next to nothing else), while a clean stream beside it has none
once learned; the query endpoint of two instances sharing a group answers for the keys of the
partitions each owns exactly what the last committed prediction record says, and names the
partition of the others. In-process, on the front's server: fuzzed paths and keys get a 4xx,
never a 5xx.
"""

from __future__ import annotations

import json
import random
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.front import FrontServer
from consumer.health import HealthServer, Probe
from consumer.query import Staged, Store, partition_of
from tests.consumer_harness import SEED_UNIT, ConsumerProcess, read_all
from tests.test_consumer_service import Topics

MESSAGES, LEARNED, RATE = 3000, 1000, 0.01


def _produce_keyed(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for key, token in records:
            producer.send(topic, key=key.encode(), value=token.encode())
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def _streams(seed: int) -> tuple[list[tuple[str, str]], set[int]]:
    """Two keys, interleaved: "noisy" with foreign tokens inserted at 1%, "clean" without.
    Returns the records and the input offsets of the foreign tokens (one partition)."""
    rnd = random.Random(seed)
    out: list[tuple[str, str]] = []
    foreign: set[int] = set()
    phase = {"noisy": 0, "clean": 5}
    while len(out) < 2 * MESSAGES:
        key = "noisy" if len(out) % 2 == 0 else "clean"
        if key == "noisy" and len(out) > 40 and rnd.random() < RATE:
            foreign.add(len(out))
            out.append((key, f"error-{rnd.randrange(10**6)}"))
            continue
        out.append((key, SEED_UNIT[phase[key] % len(SEED_UNIT)]))
        phase[key] += 1
    return out, foreign


@pytest.mark.integration
def test_foreign_tokens_are_anomalies_and_a_clean_stream_has_none(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    anomalies_topic = make_topic("anomalies")
    records, foreign = _streams(seed=7)
    _produce_keyed(kafka_bootstrap, topics.input, records)
    args = topics.args("--anomaly-top-g", "1", "--anomaly-topic", anomalies_topic, "--top-k", "4")
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path / "consumer.log", *args)
    try:
        consumer.wait_ready()
        predictions = read_all(kafka_bootstrap, topics.output, len(records), timeout_s=300)
        flagged = read_all(kafka_bootstrap, anomalies_topic, len(foreign), timeout_s=30)
        metrics = consumer.get("/metrics")[1]
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert len(predictions) == len(records)
    docs = {json.loads(r.value)["offset"]: json.loads(r.value) for r in predictions}
    assert all(len(d["top"]) == 4 for offset, d in docs.items() if offset >= 100)  # 4, 8, 28, NEW in use
    assert all(d["top"][0]["probability"] >= d["top"][-1]["probability"] for d in docs.values())
    found = {json.loads(r.value)["offset"]: json.loads(r.value) for r in flagged}
    # Once learned (the noisy key's 1,000th message on), every foreign token is an anomaly, and
    # nearly nothing else is; the clean key has none at all.
    late = {o for o in range(2 * LEARNED, len(records))}
    late_foreign, late_found = foreign & late, set(found) & late
    assert late_foreign, "the stream holds foreign tokens after the learning"
    assert late_foreign <= late_found, f"missed anomalies at {sorted(late_foreign - late_found)}"
    precision = len(late_foreign) / len(late_found)
    assert precision >= 0.95, (
        f"precision {precision:.3f}: false anomalies at {sorted(late_found - late_foreign)}"
    )
    assert not [o for o in late_found if records[o][0] == "clean"]
    for offset in late_foreign:
        doc = found[offset]
        assert doc["key"] == "noisy"
        assert doc["token"] == records[offset][1]
        assert doc["topic"] == topics.input
        assert doc["partition"] == 0
        assert doc["rank"] > 1
        assert doc["surprise_bits"] == docs[offset]["surprise_bits"] > 0
        assert docs[offset]["rank"] == doc["rank"]
    assert all(r.headers and dict(r.headers)["lstm-stream.instance"] == b"test" for r in flagged)
    assert f"lstm_stream_anomalies_total {float(len(found))}" in metrics
    assert "lstm_stream_surprise_bucket" in metrics


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.integration
def test_the_query_endpoint_agrees_with_the_last_committed_record_and_routes_the_rest(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name, partitions=2)
    keys = ["user/1", "héllo wörld", "k 3", "a?b#c", "k5", "k6", "k7", "k8"]
    assert {partition_of(k.encode(), 2) for k in keys} == {0, 1}
    records = [(key, SEED_UNIT[i % len(SEED_UNIT)]) for i in range(300) for key in keys]
    first = ConsumerProcess(kafka_bootstrap, tmp_path / "a.log", *topics.args())
    second_args = topics.args()
    second_args[second_args.index("--instance-id") + 1] = "test-b"
    second = ConsumerProcess(kafka_bootstrap, tmp_path / "b.log", *second_args)
    try:
        first.wait_ready()
        second.wait_ready()
        # Produced once both own their partitions: a partition moved after its keys' last records
        # would leave its new owner with no committed prediction of them to show (`consumer.query`).
        _produce_keyed(kafka_bootstrap, topics.input, records)
        predictions = read_all(kafka_bootstrap, topics.output, len(records), timeout_s=300)
        assert len(predictions) == len(records)
        owners = _wait_answers(keys, [first.wait_port(), second.wait_port()])
    finally:
        assert first.stop() == 0, first.log()[-3000:]
        assert second.stop() == 0, second.log()[-3000:]
    last = {}
    for record in sorted(predictions, key=lambda r: (r.partition, r.offset)):
        doc = json.loads(record.value)
        last[doc["key"]] = doc
    for key in keys:
        (status, answer), (other_status, other) = owners[key]
        assert status == 200, answer
        record = last[key]
        assert answer["offset"] == record["offset"]
        assert answer["model_step"] == record["model_step"]
        assert answer["top"] == record["top"]
        assert answer["partition"] == record["partition"] == partition_of(key.encode(), 2)
        assert other_status == 404
        assert other["partition"] == record["partition"]  # where to ask instead


def _wait_answers(keys: list[str], ports: list[int]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Each key's answers, the owner's first, once every key has one owner that knows it."""
    deadline = time.monotonic() + 60
    while True:
        answers = {
            k: [_get(p, f"/v1/streams/{urllib.parse.quote(k, safe='')}/next") for p in ports] for k in keys
        }
        done = all(sorted(s for s, _ in a) == [200, 404] for a in answers.values())
        if done or time.monotonic() > deadline:
            return {k: sorted(a, key=lambda answer: answer[0]) for k, a in answers.items()}
        time.sleep(0.5)


# -- fuzzing: 4xx, never 5xx -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_store() -> Any:
    """The port as the consumer serves it: the front, forwarding the rest to a HealthServer."""
    store = Store(instance="fuzz", max_key_bytes=32)
    store.assigned({0}, partitions=2)
    store.publish(0, {"k": Staged(1, 2, (("a", 0.5),)), None: Staged(3, 4, ())})
    address = f"\0lstm-stream-test-fuzz-{id(store)}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(address)
    unix.listen(16)
    upstream = HealthServer("", 0, Probe(60), lambda: (b"", "text/plain"), listener=unix)
    server = FrontServer(socket.create_server(("127.0.0.1", 0)), store, address)
    yield server.port
    server.close()
    upstream.close()


def _raw_status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


PATH_BYTES = st.binary(max_size=120).map(lambda b: bytes(c for c in b if c > 32 and c != 127))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from([b"/v1/streams/", b"/v1/default-stream/next?partition=", b"/v1/", b"/", b""]),
    middle=PATH_BYTES,
    suffix=st.sampled_from([b"/next", b"", b"/next?x=1", b"/", b"%", b"%2", b"%zz/next"]),
    method=st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE", b"PUT", b"FOO", b"get"]),
)
def test_fuzzed_requests_get_no_server_error(
    served_store: int, prefix: bytes, middle: bytes, suffix: bytes, method: bytes
) -> None:
    path = prefix + middle + suffix
    status = _raw_status(served_store, method + b" " + (path or b"/") + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert 200 <= status < 500, (method, path, status)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(max_size=40))
def test_any_key_percent_encoded_gets_an_answer_or_a_4xx(served_store: int, key: str) -> None:
    quoted = urllib.parse.quote(key, safe="").encode()
    status = _raw_status(served_store, b"GET /v1/streams/" + quoted + b"/next HTTP/1.1\r\nHost: x\r\n\r\n")
    encoded = key.encode()
    if not key or len(encoded) > 32:
        assert status in (400, 404)
    elif key == "k":
        assert status == 200
    else:
        assert status == 404  # owned partition, unknown key; or a partition this instance lacks


def test_a_known_key_and_the_default_stream_answer_and_bad_ones_are_refused(served_store: int) -> None:
    assert _get(served_store, "/v1/streams/k/next") == (
        200,
        {"key": "k", "partition": 0, "instance": "fuzz", "offset": 1, "model_step": 2,
         "top": [{"token": "a", "probability": 0.5}]},
    )  # fmt: skip
    assert _get(served_store, "/v1/default-stream/next?partition=0")[0] == 200
    assert _get(served_store, "/v1/default-stream/next?partition=1")[0] == 404
    assert _get(served_store, "/v1/default-stream/next?partition=-1")[0] == 400
    assert _get(served_store, "/v1/streams/%FF%FE/next")[0] == 400
    assert _get(served_store, "/v1/streams/" + "x" * 40 + "/next")[0] == 400
    assert _get(served_store, "/v1/streams/a/b/next")[0] == 400
    assert _get(served_store, "/v1/nothing")[0] == 404
    assert _raw_status(served_store, b"POST /v1/streams/k/next HTTP/1.1\r\nHost: x\r\n\r\n") == 405
