"""The state topic: one compacted record per input partition holding its learner's snapshot.

Record layout: key ``GROUP/INPUT_TOPIC/PARTITION`` (`StateSettings.state_key`), written to state
partition ``input partition % state partitions`` so a restore reads one partition only; value the
learner snapshot (`consumer.core.snapshot`) compressed with zlib; headers ``lstm-stream.offset``
(the next input offset to process: the snapshot includes everything before it) and
``lstm-stream.encoding`` (``npz+zlib``). Under exactly-once the record is written in the same
transaction as the offsets it matches; readers use read_committed.

A restore reads the state partition backwards in growing windows from its end until it finds the
latest record of each wanted key, so a long uncompacted tail costs nothing.

>>> blob = encode_state(b"npz bytes")
>>> decode_state(blob, "npz+zlib")
b'npz bytes'
>>> decode_state(b"junk", "npz+zlib")
Traceback (most recent call last):
...
consumer.core.snapshot_read.SnapshotError: corrupt snapshot: not zlib data (Error -3 while decompressing data: incorrect header check)
"""  # noqa: E501

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from consumer.core.snapshot_read import SnapshotError
from consumer.settings import StateSettings

__all__ = [
    "ENCODING",
    "OFFSET_HEADER",
    "STATE_MAX_BYTES",
    "StoredState",
    "decode_state",
    "encode_state",
    "ensure_topic",
    "max_message_bytes",
    "read_states",
    "state_headers",
]

log = logging.getLogger(__name__)

ENCODING = "npz+zlib"
OFFSET_HEADER = "lstm-stream.offset"
FEEDBACK_OFFSET_HEADER = "lstm-stream.feedback-offset"  # the next feedback offset (with --anomaly-top-g)
ENCODING_HEADER = "lstm-stream.encoding"
STATE_MAX_BYTES = 64 * 1024 * 1024  # a learner with 10,000 keys stays far below
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(STATE_MAX_BYTES),
    # Small segments and an eager cleaner keep a topic written every commit from growing.
    "segment.bytes": str(64 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}
# A dead letter is the input record plus our headers: a record at the input topic's size limit
# must still fit, or it could never be dead-lettered and would stop the partition.
DEAD_LETTER_TOPIC_CONFIG = {"max.message.bytes": str(STATE_MAX_BYTES)}


@dataclass(frozen=True)
class StoredState:
    """The latest snapshot of one input partition and where processing resumes."""

    partition: int
    offset: int
    value: bytes
    encoding: str
    state_offset: int  # where it sits in the state topic, for log lines
    feedback_offset: int | None = None  # the next feedback record to apply, if it says

    def snapshot(self) -> bytes:
        """The learner snapshot; a `SnapshotError` if the record holds anything else."""
        return decode_state(self.value, self.encoding)


def encode_state(snapshot: bytes) -> bytes:
    return zlib.compress(snapshot, 1)


def decode_state(value: bytes, encoding: str) -> bytes:
    """The snapshot bytes of a state record; a `SnapshotError` for anything else."""
    if encoding != ENCODING:
        raise SnapshotError(f"corrupt snapshot: unknown encoding {encoding!r} (expected {ENCODING})")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(value, STATE_MAX_BYTES * 8)
    except zlib.error as exc:
        raise SnapshotError(f"corrupt snapshot: not zlib data ({exc})") from None
    if inflater.unconsumed_tail:
        raise SnapshotError("corrupt snapshot: inflates beyond the size limit")
    if not inflater.eof:
        raise SnapshotError("corrupt snapshot: truncated zlib data")
    return data


def state_headers(offset: int, feedback_offset: int | None = None) -> list[tuple[str, bytes]]:
    headers = [(OFFSET_HEADER, str(offset).encode()), (ENCODING_HEADER, ENCODING.encode())]
    if feedback_offset is not None:
        headers.append((FEEDBACK_OFFSET_HEADER, str(feedback_offset).encode()))
    return headers


def ensure_topic(
    admin: KafkaAdminClient,
    name: str,
    partitions: int,
    config: dict[str, str] | None = None,
    replication_factor: int | None = None,
) -> bool:
    """Create the topic unless it exists, with `replication_factor` replicas (None: the broker's
    default.replication.factor); True when this call created it."""
    replicas = replication_factor or -1
    try:
        admin.create_topics([NewTopic(name, partitions, replicas, topic_configs=config or {})])
    except TopicAlreadyExistsError:
        return False
    replicated = replication_factor or "the broker's default"
    log.info("created topic %s (%d partitions, replication factor %s)", name, partitions, replicated)
    return True


def max_message_bytes(admin: KafkaAdminClient, name: str) -> int | None:
    """The topic's `max.message.bytes`, or None when the broker does not say (no topic, no rights)."""
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, configs={"max.message.bytes": None})],
            config_filter="all",
        )
        return int(described["topic"][name]["max.message.bytes"]["value"])
    except Exception as exc:
        log.warning("cannot read max.message.bytes of topic %s: %s", name, exc)
        return None


def _parse(record: Any, partition: int) -> StoredState:
    headers = {name: value for name, value in record.headers or []}
    try:
        offset = int((headers.get(OFFSET_HEADER) or b"").decode())
    except ValueError:
        raise SnapshotError(
            f"corrupt snapshot: state record at offset {record.offset} has no valid {OFFSET_HEADER} header"
        ) from None
    if record.value is None:
        raise SnapshotError(f"corrupt snapshot: state record at offset {record.offset} has no value")
    encoding = (headers.get(ENCODING_HEADER) or b"").decode(errors="replace")
    feedback = headers.get(FEEDBACK_OFFSET_HEADER)
    try:
        feedback_offset = None if feedback is None else int(feedback.decode())
    except ValueError:
        raise SnapshotError(
            f"corrupt snapshot: state record at offset {record.offset} has an invalid "
            f"{FEEDBACK_OFFSET_HEADER} header"
        ) from None
    return StoredState(partition, offset, record.value, encoding, record.offset, feedback_offset)


def read_states(
    settings: StateSettings, partitions: Iterable[int], client_kwargs: dict[str, Any], timeout_s: float
) -> dict[int, StoredState]:
    """The latest committed snapshot of each input partition that has one."""
    wanted = {settings.state_key(p).encode(): p for p in partitions}
    if not wanted:
        return {}
    reader = KafkaConsumer(
        **client_kwargs,
        isolation_level="read_committed",
        enable_auto_commit=False,
        request_timeout_ms=max(int(timeout_s * 1000), 30_000) + 5_000,
        max_partition_fetch_bytes=STATE_MAX_BYTES,
        fetch_max_bytes=STATE_MAX_BYTES,
    )
    try:
        count = len(reader.partitions_for_topic(settings.state_topic) or ())
        if not count:
            return {}
        found: dict[int, Any] = {}
        by_state_partition: dict[int, dict[bytes, int]] = {}
        for key, p in wanted.items():
            by_state_partition.setdefault(p % count, {})[key] = p
        for sp, keys in by_state_partition.items():
            found.update(_scan_backwards(reader, TopicPartition(settings.state_topic, sp), keys))
        return {p: _parse(record, p) for p, record in found.items()}
    finally:
        reader.close()


def _scan_backwards(reader: KafkaConsumer, tp: TopicPartition, keys: dict[bytes, int]) -> dict[int, Any]:
    reader.assign([tp])
    begin = reader.beginning_offsets([tp])[tp]
    end = reader.end_offsets([tp])[tp]  # read_committed: the last stable offset
    found: dict[int, Any] = {}
    window, high = 16, end
    while high > begin and len(found) < len(keys):
        low = max(begin, high - window)
        latest: dict[int, Any] = {}
        for record in _read_range(reader, tp, low, high):
            partition = keys.get(record.key)
            if partition is not None and partition not in found:
                latest[partition] = record  # later records win
        found.update(latest)
        high, window = low, window * 4
    return found


def _read_range(reader: KafkaConsumer, tp: TopicPartition, low: int, high: int) -> list[Any]:
    reader.seek(tp, low)
    records: list[Any] = []
    while reader.position(tp) < high:
        batch = reader.poll(timeout_ms=1000, max_records=500)
        records.extend(r for r in batch.get(tp, []) if r.offset < high)
    return records
