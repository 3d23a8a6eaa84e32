"""``POST /v1/streams/{key}/feedback``: a reader's mark on an anomaly, sent to the feedback topic.

The front forwards the request to the processing process (`consumer.health.HealthServer`), where
`FeedbackSender` checks it and sends it, keyed by the stream, to --feedback-topic with a producer
of its own (not the transactional one), and answers once Kafka has it: 202 with where it went.
From there it is a mark like any other (`consumer.feedback_records`): the partition's learner
applies it in a transaction, or dead-letters it. The body is the record's value:

    curl -X POST localhost:8000/v1/streams/stream-0/feedback -d '{"offset": 4000, "label": "normal"}'
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumer.feedback_records import Mark, decode_mark, encode_mark
from consumer.http_response import JSON, response
from consumer.records import Rejected
from consumer.settings import RunSettings

__all__ = ["FeedbackSender"]

log = logging.getLogger(__name__)
PREFIX, SUFFIX = "/v1/streams/", "/feedback"
SEND_TIMEOUT_S = 30.0


class FeedbackSender:
    """The POST route of the processing process; `close` when the process stops."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(1, "feedback")
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        if settings.anomaly_top_g:  # connect before the first mark, so that it does not wait for it
            self._pool.submit(self._warm)

    def __call__(self, path: str, body: bytes) -> bytes | Future[bytes]:
        s = self.settings
        route = path.split("?", 1)[0]
        if not (route.startswith(PREFIX) and route.endswith(SUFFIX)) or len(route) <= len(PREFIX + SUFFIX):
            return _json(404, {"error": "POST goes to /v1/streams/{key}/feedback"})
        if not s.anomaly_top_g:
            return _json(404, {"error": "no anomalies to mark: the consumer runs without --anomaly-top-g"})
        raw = route[len(PREFIX) : -len(SUFFIX)]
        try:
            encoded = urllib.parse.unquote_to_bytes(raw)
            key = encoded.decode("utf-8")
        except UnicodeDecodeError:
            return _json(400, {"error": "the key is not UTF-8 once percent-decoded"})
        if "/" in raw or len(encoded) > s.max_key_bytes:
            return _json(400, {"error": "the key must be percent-encoded and at most --max-key-bytes long"})
        mark = decode_mark(encoded, body)
        if isinstance(mark, Rejected):
            return _json(400, {"error": mark.detail})
        return self._pool.submit(self._send, key, mark)

    def _send(self, key: str, mark: Mark) -> bytes:
        s = self.settings
        label = "normal" if mark.normal else "anomaly"
        # With --key-field the stream's key is in the value; else it is the record key.
        value = encode_mark(mark.offset, label, key if s.key_field else None)
        try:
            metadata = self._client().send(s.feedback_topic, key=key.encode(), value=value)
            sent = metadata.get(timeout=SEND_TIMEOUT_S)
        except KafkaError as exc:
            log.warning("feedback for %r not sent: %s", key, exc)
            return _json(503, {"error": f"the feedback topic did not take the mark: {exc}"})
        return _json(
            202,
            {
                "key": key,
                "offset": mark.offset,
                "label": label,
                "topic": sent.topic,
                "partition": sent.partition,
                "feedback_offset": sent.offset,
            },
        )

    def _client(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    **self.settings.client_kwargs(), acks="all", enable_idempotence=True, linger_ms=0
                )
            return self._producer

    def _warm(self) -> None:
        try:
            self._client()
        except KafkaError as exc:  # the first POST tries again, and says why if it fails
            log.warning("feedback producer not connected yet: %s", exc)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._producer is not None:
            self._producer.close(timeout=10)


def _json(status: int, document: dict[str, Any]) -> bytes:
    return response(status, json.dumps(document, ensure_ascii=False).encode(), JSON)
