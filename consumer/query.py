"""What comes next for stream K: each key's committed prediction, for ``GET /v1/streams/{key}/next``.

The processing loop stages each key's latest prediction on its partition (`Staged`: the input
offset it follows, the model step, the top-k) and `publish`es them when the checkpoint that
holds them commits, through a `Publisher`: in the service, `consumer.front.Feed`, which sends
them to the front process's copy of this store. A query sees what the predictions topic shows
to a read_committed reader, never the live learner. Partitions leave the store when this
instance loses them; a partition it takes (after a rebalance or a restart) answers a key once
a commit has published the key's next prediction: the predictions are not in the snapshot.

Routes (the key percent-encoded UTF-8, as `urllib.parse.quote(key, safe="")` writes it):

- ``/v1/streams/{key}/next``: 200 with the key's pending prediction; 404 with the partition
  the key maps to (Kafka's default partitioner, as producers use it) when this instance does
  not own that partition, or has no prediction for the key yet; 400 for a key that is not
  UTF-8, empty, or longer than --max-key-bytes;
- ``/v1/default-stream/next?partition=P``: the same for the records without a key (they are a
  stream of their own in each partition; P defaults to 0).

With --key-field the stream key is read from the record's value, so its partition cannot be
computed from it: the store then answers from whichever owned partition last published the key
(`Store(keys_from_values=True)`), and a 404 names no partition.

>>> store = Store(instance="a", max_key_bytes=8)
>>> store.assigned({0}, partitions=2)
>>> store.publish(0, {"k": Staged(41, 12, (("8", 0.9), (None, 0.1)))})
>>> store.answer("/v1/streams/k/next")[0], store.answer("/v1/streams/%FF/next")[0]
(200, 400)
>>> store.answer("/v1/streams/k/next")[1]["top"]
[{'token': '8', 'probability': 0.9}, {'token': None, 'probability': 0.1}]
>>> store.answer("/v1/streams/alice/next")
(404, {'error': 'partition 1 of the input topic is not owned by this instance', 'key': 'alice', 'partition': 1, 'instance': 'a'})
"""  # noqa: E501

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

from kafka.partitioner.default import murmur2

__all__ = ["Publisher", "Staged", "Store", "partition_of"]

PREFIX, SUFFIX, DEFAULT = "/v1/streams/", "/next", "/v1/default-stream/next"


@dataclass(frozen=True)
class Staged:
    """A key's latest prediction: the input offset it follows, the model step, the top-k."""

    offset: int
    model_step: int
    top: tuple[tuple[str | None, float], ...]


class Publisher(Protocol):
    """The processing loop's side of a `Store` (the store itself, or `consumer.front.Feed`)."""

    def assigned(self, owned: set[int], partitions: int) -> None: ...
    def owned(self) -> list[int]: ...
    def dropped(self, partitions: set[int]) -> None: ...
    def publish(self, partition: int, latest: dict[str | None, Staged]) -> None: ...


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's, kafka-python's) gives a keyed record."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class Store:
    """The committed predictions of the partitions this instance owns, by key. Thread-safe:
    the loop publishes, HTTP threads read."""

    def __init__(self, instance: str, max_key_bytes: int, keys_from_values: bool = False) -> None:
        self.instance, self.max_key_bytes = instance, max_key_bytes
        self.keys_from_values = keys_from_values
        self._lock = threading.Lock()
        self._partitions = 0  # of the input topic, once known
        self._owned: dict[int, dict[str | None, Staged]] = {}
        self._latest: dict[str | None, int] = {}  # keys_from_values: key -> partition that last had it

    # -- the processing loop's side ---------------------------------------------------------
    def assigned(self, owned: set[int], partitions: int) -> None:
        """Now owned: these partitions of an input topic of `partitions` partitions."""
        with self._lock:
            self._partitions = partitions
            for p in owned:
                self._owned.setdefault(p, {})

    def owned(self) -> list[int]:
        with self._lock:
            return sorted(self._owned)

    def dropped(self, partitions: set[int]) -> None:
        with self._lock:
            for p in partitions:
                for key in self._owned.pop(p, {}):
                    if self._latest.get(key) == p:
                        del self._latest[key]

    def publish(self, partition: int, latest: dict[str | None, Staged]) -> None:
        """A commit made these predictions visible."""
        with self._lock:
            if partition in self._owned:
                self._owned[partition].update(latest)
                if self.keys_from_values:
                    self._latest.update(dict.fromkeys(latest, partition))

    # -- the HTTP side -----------------------------------------------------------------------
    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """(status, JSON document) for a request path (query string included)."""
        route, _, query = path.partition("?")
        if route == DEFAULT:
            return self._default(query)
        if not (route.startswith(PREFIX) and route.endswith(SUFFIX)) or len(route) <= len(PREFIX + SUFFIX):
            return 404, {"error": "no such endpoint: /v1/streams/{key}/next or /v1/default-stream/next"}
        raw = route[len(PREFIX) : -len(SUFFIX)]
        if "/" in raw:
            return 400, {"error": "the key must be percent-encoded (a '/' is %2F)"}
        try:
            encoded = urllib.parse.unquote_to_bytes(raw)
            key = encoded.decode("utf-8")
        except UnicodeDecodeError:
            return 400, {"error": "the key is not UTF-8 once percent-decoded"}
        if len(encoded) > self.max_key_bytes:
            return 400, {"error": f"the key is longer than {self.max_key_bytes} bytes (--max-key-bytes)"}
        with self._lock:
            partitions = self._partitions
            where = self._latest.get(key)
        if not partitions:
            return 404, {"error": "this instance owns no partition yet", "key": key}
        if not self.keys_from_values:
            return self._lookup(key, partition_of(encoded, partitions))
        if where is None:
            return 404, {
                "error": "no committed prediction for this key on this instance (with --key-field a key's "
                "partition cannot be known from the key: ask every instance)",
                "key": key,
                "instance": self.instance,
            }
        return self._lookup(key, where)

    def _default(self, query: str) -> tuple[int, dict[str, Any]]:
        values = urllib.parse.parse_qs(query, errors="replace").get("partition", ["0"])
        if len(values) != 1 or not values[0].isdigit() or len(values[0]) > 9:
            return 400, {"error": "partition must be one whole number"}
        return self._lookup(None, int(values[0]))

    def _lookup(self, key: str | None, partition: int) -> tuple[int, dict[str, Any]]:
        with self._lock:
            keys = self._owned.get(partition)
            pending = None if keys is None else keys.get(key)
        where = {"key": key, "partition": partition, "instance": self.instance}
        if keys is None:
            return 404, {
                "error": f"partition {partition} of the input topic is not owned by this instance",
                **where,
            }
        if pending is None:
            return 404, {"error": "no committed prediction for this key yet", **where}
        return 200, {
            **where,
            "offset": pending.offset,
            "model_step": pending.model_step,
            "top": [{"token": token, "probability": probability} for token, probability in pending.top],
        }
