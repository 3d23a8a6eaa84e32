"""`lstm-consumer snapshot inspect|export|import`: a partition's learner between the state topic
and a file.

- ``inspect FILE``: what a snapshot file holds (format version, model settings, messages,
  keys, vocabulary, the bytes of each part), offline, as one JSON object.
- ``export FILE``: the partition's latest committed learner from the state topic to FILE (the
  snapshot bytes, as `consumer.core.snapshot.save` writes them), and ``FILE.json`` beside it:
  the group, input topic, partition and the input offset the learner continues from.
- ``import FILE``: FILE (a backup, or a learner `evaluate --save` trained offline) becomes the
  partition's learner. It must restore under this deployment's model settings, as a restore
  would (the same checks); it is refused while the consumer group has members, unless
  ``--force``; its offset is ``--offset``, else the backup's own (``FILE.json``, same group,
  topic and partition), else the group's committed offset, else the partition's end.

Exit codes: 0 done, 1 refused (a snapshot that does not restore, an active group, no stored
learner), 2 bad configuration.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from consumer.core.config import LearnerConfig
from consumer.core.snapshot import recorded_config, restore, write_whole
from consumer.core.snapshot_read import Archive, SnapshotError
from consumer.settings import SnapshotSettings
from consumer.state import STATE_MAX_BYTES, encode_state, read_states, state_headers

__all__ = ["export_file", "import_file", "inspect"]

log = logging.getLogger("consumer.backup")


def inspect(path: str) -> dict[str, Any]:
    """The header's figures and the size of each part of the snapshot file `path`."""
    data = Path(path).read_bytes()
    config = recorded_config(data)
    archive = Archive(data)
    header = archive.header()
    sizes: Counter[str] = Counter()
    for name in archive.names:
        sizes[name.split(".")[0]] += archive.zip.getinfo(f"{name}.npy").file_size
    keys, vocab = header.get("keys", {}), header.get("vocab", {})
    return {
        "file": path,
        "bytes": len(data),
        "version": header.get("version"),
        "fingerprint": header.get("fingerprint"),
        "messages": header.get("messages"),
        "model_step": header.get("model_step"),
        "keys": len(keys.get("keys", [])) if isinstance(keys, dict) else None,
        "vocabulary": len(vocab.get("tokens", [])) if isinstance(vocab, dict) else None,
        "config": config,
        "part_bytes": dict(sorted(sizes.items())),
    }


def export_file(settings: SnapshotSettings, path: str) -> int:
    """The partition's stored learner to `path`, its place to `path`.json."""
    stored = read_states(settings, [settings.partition], settings.client_kwargs(), settings.timeout_s)
    state = stored.get(settings.partition)
    if state is None:
        log.error(
            "no stored learner for partition %d of %s (group %s) in %s",
            *(settings.partition, settings.input_topic, settings.group_id, settings.state_topic),
        )
        return 1
    data = state.snapshot()
    write_whole(Path(path), data)
    place = {
        "group": settings.group_id,
        "input_topic": settings.input_topic,
        "partition": settings.partition,
        "offset": state.offset,
    }
    write_whole(Path(path + ".json"), (json.dumps(place, indent=1) + "\n").encode())
    print(json.dumps({**place, "file": path, "bytes": len(data)}))
    return 0


def import_file(settings: SnapshotSettings, config: LearnerConfig, path: str) -> int:
    """`path` as the partition's learner on the state topic, if it restores and the group is idle."""
    data = Path(path).read_bytes()
    try:
        learner = restore(data, config)
    except SnapshotError as exc:
        log.error("%s is refused: %s", path, exc)
        return 1
    kwargs = settings.client_kwargs()
    admin = KafkaAdminClient(**kwargs, request_timeout_ms=int(settings.timeout_s * 1000))
    try:
        members = _members(admin, settings.group_id)
        if members and not settings.force:
            log.error(
                "consumer group %s has %d member(s): stop them first, or give --force (they read the "
                "imported learner only when they next take the partition)",
                *(settings.group_id, members),
            )
            return 1
        offset, source = _offset(settings, admin, path)
    finally:
        admin.close()
    producer = KafkaProducer(
        **kwargs,
        acks="all",
        max_request_size=STATE_MAX_BYTES,
        request_timeout_ms=int(settings.timeout_s * 1000),
    )
    try:
        partitions = producer.partitions_for(settings.state_topic)
        if not partitions:
            log.error("no state topic %s: run the consumer once, or create it", settings.state_topic)
            return 1
        future = producer.send(
            settings.state_topic,
            key=settings.state_key(settings.partition).encode(),
            value=encode_state(data),
            headers=state_headers(offset),
            partition=settings.partition % len(partitions),
        )
        future.get(timeout=settings.timeout_s)
    finally:
        producer.close(timeout=settings.timeout_s)
    print(
        json.dumps(
            {
                "group": settings.group_id,
                "input_topic": settings.input_topic,
                "partition": settings.partition,
                "offset": offset,
                "offset_from": source,
                "messages": learner.messages,
                "file": path,
            }
        )
    )
    return 0


def _members(admin: KafkaAdminClient, group: str) -> int:
    """The group's members now (0 for a group without any, or never seen)."""
    description = admin.describe_groups([group]).get(group) or {}
    return len(description.get("members") or [])


def _offset(settings: SnapshotSettings, admin: KafkaAdminClient, path: str) -> tuple[int, str]:
    """Where the imported learner continues, and why there."""
    if settings.offset >= 0:
        return settings.offset, "--offset"
    place = Path(path + ".json")
    if place.is_file():
        saved = json.loads(place.read_text())
        same = (saved.get("group"), saved.get("input_topic"), saved.get("partition")) == (
            settings.group_id,
            settings.input_topic,
            settings.partition,
        )
        if same and isinstance(saved.get("offset"), int) and saved["offset"] >= 0:
            return saved["offset"], str(place)
    tp = TopicPartition(settings.input_topic, settings.partition)
    committed = admin.list_group_offsets({settings.group_id: [tp]}).get(settings.group_id, {}).get(tp)
    if committed is not None and committed.offset >= 0:
        return int(committed.offset), "the group's committed offset"
    reader = KafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False)
    try:
        end = reader.end_offsets([tp]).get(tp)
    finally:
        reader.close()
    if end is None:
        raise SnapshotError(f"no partition {settings.partition} of {settings.input_topic}")
    return int(end), "the partition's end"
