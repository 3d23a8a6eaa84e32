"""Events as users send them, through the broker: nested JSON, the stream key inside the value.

Users' events interleave in one topic whose record keys are not the stream (a session id here);
each user's event type follows the seed sequence from a phase of its own. With
`--value-format json --value-field event.type --key-field user.id` every user is learned as a
stream, its predictions are keyed by the user, the query endpoint answers for a user, and a
record without the fields is a dead letter with its reason. And the producer's own JSON is read
by the consumer with its defaults.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.consumer_harness import ConsumerProcess, produce, read_all, seed_tokens
from tests.test_consumer_service import Topics

pytestmark = pytest.mark.integration

USERS, PER_USER = 4, 700


def _events(rng: random.Random) -> tuple[list[bytes], dict[int, str]]:
    """Every user's seed stream from a random phase, interleaved at random; bad records between."""
    streams = {user: seed_tokens(PER_USER + 27)[rng.randrange(27) :][:PER_USER] for user in range(USERS)}
    order = [user for user in streams for _ in range(PER_USER)]
    rng.shuffle(order)
    position = dict.fromkeys(streams, 0)
    values: list[bytes] = []
    bad: dict[int, str] = {}
    for i, user in enumerate(order):
        token = streams[user][position[user]]
        position[user] += 1
        page = {"4": "/list", "8": "/item", "28": "/cart"}[token]
        event = {"user": {"id": 1000 + user, "plan": "free"}, "event": {"type": token, "page": page}}
        values.append(json.dumps(event).encode())
        if i % 500 == 250:  # a record without a user, one without an event type
            bad[len(values)] = "missing_key_field"
            values.append(b'{"event": {"type": "4"}}')
            bad[len(values)] = "invalid_field"
            values.append(b'{"user": {"id": 1}, "event": {"type": null}}')
    return values, bad


def test_nested_events_keyed_by_a_field_learn_and_predict_end_to_end(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    values, bad = _events(random.Random(5))
    produce(kafka_bootstrap, topics.input, values, key=b"session-a9")  # not the stream key
    args = topics.args("--value-format", "json", "--value-field", "event.type", "--key-field", "user.id")
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path / "consumer.log", *args)
    valid = len(values) - len(bad)
    try:
        records = read_all(kafka_bootstrap, topics.output, valid, timeout_s=240)
        dead = read_all(kafka_bootstrap, topics.dead, len(bad), timeout_s=60)
        status, body = consumer.get("/v1/streams/" + urllib.parse.quote("1002", safe="") + "/next")
        missing_status, missing = consumer.get("/v1/streams/nobody/next")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert len(records) == valid
    by_user: dict[bytes, list[dict[str, object]]] = {}
    for record in records:
        doc = json.loads(record.value)
        assert record.key == str(doc["key"]).encode()  # keyed as learned: the user, not the session
        by_user.setdefault(record.key, []).append(doc)
    assert sorted(by_user) == [str(1000 + user).encode() for user in range(USERS)]
    for user, docs in by_user.items():
        assert len(docs) == PER_USER
        last = [d["previous_hit"] for d in docs[-200:]]
        assert sum(bool(hit) for hit in last) >= 196, f"user {user!r}: {sum(bool(h) for h in last)} of 200"
    reasons = {
        int(dict(r.headers)["lstm-stream.dead-letter.offset"]): dict(r.headers)[
            "lstm-stream.dead-letter.reason"
        ]
        for r in dead
    }
    assert reasons == {offset: reason.encode() for offset, reason in bad.items()}
    assert all(r.key == b"session-a9" for r in dead)  # a dead letter is the input record, untouched
    assert status == 200, body
    answer = json.loads(body)
    assert answer["key"] == "1002"
    assert answer["offset"] == max(d["offset"] for d in by_user[b"1002"])  # type: ignore[type-var]
    assert missing_status == 404
    assert "--key-field" in json.loads(missing)["error"]


def test_the_producers_json_is_learned_with_the_consumers_defaults(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    produced = subprocess.run(
        [
            *(sys.executable, "-m", "producer", "pattern", "--bootstrap-servers", kafka_bootstrap),
            *("--topic", topics.input, "--count", "600", "--value-format", "json", "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert produced.returncode == 0, produced.stderr
    consumer = ConsumerProcess(
        kafka_bootstrap, tmp_path / "consumer.log", *topics.args("--value-format", "json")
    )
    try:
        records = read_all(kafka_bootstrap, topics.output, 600, timeout_s=240)
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert len(records) == 600
    assert read_all(kafka_bootstrap, topics.dead, 0, timeout_s=5) == []
    docs = [json.loads(r.value) for r in records]
    assert sum(bool(d["previous_hit"]) for d in docs[-100:]) >= 99
