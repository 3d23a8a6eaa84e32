"""Readers' marks on anomalies, through the feedback topic, against the real broker.

A new event starts recurring mid-stream (normal from then on, as a new deploy step would be): its
first appearance is an anomaly. A reader marks it normal with ``POST /v1/streams/{key}/feedback``,
which goes through the feedback topic: the same transition is not flagged again, in this process
or after a restart (the marks are in the snapshot, and the feedback offset is committed with it,
so no mark is applied twice). Marks that cannot be applied (an offset the learner never flagged,
not JSON), produced to the topic by any client, are dead letters with their reason; the metrics
count what was applied and refused. A bad request gets a 4xx and sends nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consumer.feedback_records import encode_mark
from tests.consumer_harness import SEED_UNIT, ConsumerProcess, metric_samples, produce, read_all
from tests.test_consumer_service import Topics

NEW = "DEPLOY"
AFTER = 12  # the new event follows the pattern's position 12 (a "4", "8" context)


def _stream(passes: int, new_from: int) -> list[str]:
    """The seed pattern `passes` times, the new event after position AFTER from pass `new_from` on."""
    out: list[str] = []
    for n in range(passes):
        for i, token in enumerate(SEED_UNIT):
            out.append(token)
            if n >= new_from and i == AFTER:
                out.append(NEW)
    return out


def _wait_metric(consumer: ConsumerProcess, name: str, labels: str, value: float, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = metric_samples(consumer.get("/metrics")[1], name)
        if seen.get(labels, 0.0) >= value:
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}{labels} stayed below {value}: {seen}")


@pytest.mark.integration
def test_a_normal_mark_silences_the_transition_and_survives_a_restart(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    anomalies, feedback = make_topic("anomalies"), make_topic("feedback")
    args = topics.args("--anomaly-top-g", "1", "--anomaly-topic", anomalies, "--feedback-topic", feedback)
    first = _stream(60, new_from=50)  # learned, then the new event ten times
    produce(kafka_bootstrap, topics.input, [t.encode() for t in first], key=b"s")
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path / "consumer.log", *args)
    try:
        consumer.wait_ready()
        read_all(kafka_bootstrap, topics.output, len(first), timeout_s=300)
        flagged = [json.loads(r.value) for r in read_all(kafka_bootstrap, anomalies, 1, timeout_s=30)]
        deploys = [d for d in flagged if d["token"] == NEW]
        assert deploys, f"the new event's first appearance is an anomaly: {flagged}"
        marked = deploys[0]["offset"]
        assert consumer.post("/v1/streams/s/feedback", b'{"offset": 1}')[0] == 400  # no label
        assert consumer.post("/v1/streams/s/next", encode_mark(marked, "normal"))[0] == 405
        status, body = consumer.post("/v1/streams/s/feedback", encode_mark(marked, "normal"))
        assert status == 202, body
        assert json.loads(body)["topic"] == feedback
        for value in (encode_mark(10**9, "normal"), b"{not json"):  # never flagged; not a mark
            produce(kafka_bootstrap, feedback, [value], key=b"s")
        _wait_metric(consumer, "lstm_stream_feedback_total", '{outcome="refused"}', 2, 60)
        _wait_metric(consumer, "lstm_stream_feedback_total", '{outcome="applied"}', 1, 60)
        received = metric_samples(consumer.get("/metrics")[1], "lstm_stream_feedback_total")
        assert received['{outcome="received"}'] == 3
        second = _stream(20, new_from=0)
        produce(kafka_bootstrap, topics.input, [t.encode() for t in second], key=b"s")
        read_all(kafka_bootstrap, topics.output, len(first) + len(second), timeout_s=120)
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    after_mark = len(first)  # the second part's offsets start here
    flagged = [json.loads(r.value) for r in read_all(kafka_bootstrap, anomalies, 1, timeout_s=30)]
    assert not [d for d in flagged if d["token"] == NEW and d["offset"] >= after_mark], flagged

    dead = read_all(kafka_bootstrap, topics.dead, 2, timeout_s=30)
    reasons = sorted(dict(r.headers)["lstm-stream.dead-letter.reason"].decode() for r in dead)
    assert reasons == ["feedback_invalid", "feedback_not_held"]
    assert {dict(r.headers)["lstm-stream.dead-letter.topic"].decode() for r in dead} == {feedback}

    # A restart restores the marks with the learner, and applies no mark again.
    third = _stream(20, new_from=0)
    produce(kafka_bootstrap, topics.input, [t.encode() for t in third], key=b"s")
    again = ConsumerProcess(kafka_bootstrap, tmp_path / "again.log", *args)
    try:
        again.wait_ready()
        read_all(kafka_bootstrap, topics.output, len(first) + len(second) + len(third), timeout_s=120)
        metrics = again.get("/metrics")[1]
    finally:
        assert again.stop() == 0, again.log()[-3000:]
    flagged = [json.loads(r.value) for r in read_all(kafka_bootstrap, anomalies, 1, timeout_s=30)]
    assert not [d for d in flagged if d["token"] == NEW and d["offset"] >= after_mark], flagged
    assert metric_samples(metrics, "lstm_stream_feedback_total") == {
        '{outcome="received"}': 0.0,
        '{outcome="applied"}': 0.0,
        '{outcome="refused"}': 0.0,
    }
