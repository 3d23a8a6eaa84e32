"""Settings of lstm-consumer's commands besides the model's (`consumer.core.config.LearnerConfig`).

Every field is a flag and an environment variable with the prefix ``LSTM_CONSUMER_``. This
module stays light: `lstm-consumer --help` must not import TensorFlow. `evaluate`'s own
settings are in `consumer.evaluate_settings` (`EvaluateSettings`, also importable from here).

>>> from lstm_stream.settings import load
>>> s = load(RunSettings, PREFIX, ["--group-id", "g1"], env={"LSTM_CONSUMER_COMMIT_INTERVAL_MS": "50"})
>>> (s.group_id, s.input_topic, s.output_topic, s.commit_interval_ms, s.processing_guarantee)
('g1', 'sequence', 'predictions', 50, 'exactly_once')
>>> s.state_key(3)
'g1/sequence/3'
>>> load(RunSettings, PREFIX, ["--processing-guarantee", "twice"], env={})
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --processing-guarantee (env LSTM_CONSUMER_PROCESSING_GUARANTEE): \
must be one of exactly_once, at_least_once, got 'twice'
"""

from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from consumer.evaluate_settings import EvaluateSettings
from lstm_stream.json_fields import parse_path
from lstm_stream.kafka_options import KafkaClientSettings, replication_factor_option
from lstm_stream.settings import ConfigError, at_least, option

__all__ = [
    "AUTO_OFFSET_RESETS",
    "GUARANTEES",
    "LOG_FORMATS",
    "PREFIX",
    "VALUE_FORMATS",
    "EvaluateSettings",
    "ExportSettings",
    "RunSettings",
    "SnapshotSettings",
    "StateSettings",
]

PREFIX = "LSTM_CONSUMER_"
TOPICS, PROCESSING, INPUT, OPERATIONS = "topics", "processing", "input", "operations"
EXPORT, SNAPSHOT = "export", "snapshot"
PREDICTIONS = "predictions"
GUARANTEES = ("exactly_once", "at_least_once")
AUTO_OFFSET_RESETS = ("earliest", "latest")
VALUE_FORMATS = ("text", "json")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def usable_cpus() -> int:
    """The CPUs this process may run on, within its cgroup's CPU quota (docker --cpus) if it has one."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def _topic(value: str) -> str | None:
    ok = _TOPIC.match(value) and value not in (".", "..")
    return None if ok else f"not a valid Kafka topic name: {value!r}"


def _path(text: str) -> str:
    if text:
        parse_path(text)  # its ValueError becomes a ConfigError naming the option
    return text


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be > 0, got {value!r}"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"must be a port number 0..65535, got {value!r}"


def _instance_id(value: str) -> str | None:
    ok = re.match(r"^[A-Za-z0-9._-]{0,100}$", value)
    return None if ok else f"only letters, digits, '.', '_' and '-' (at most 100), got {value!r}"


@dataclass(frozen=True)
class StateSettings(KafkaClientSettings):
    """Where a consumer group keeps its learners: shared by `run` and `export`."""

    group_id: str = option("lstm-stream", "consumer group; also names the learners' state", group=TOPICS)
    input_topic: str = option("sequence", "topic of the token streams", check=_topic, group=TOPICS)
    state_topic: str = option(
        "lstm-stream-state",
        "compacted topic of the learners' snapshots (created if missing)",
        check=_topic,
        group=TOPICS,
    )

    def state_key(self, partition: int) -> str:
        """The state topic's key of one input partition's snapshot."""
        return f"{self.group_id}/{self.input_topic}/{partition}"


@dataclass(frozen=True)
class RunSettings(StateSettings):
    """How `lstm-consumer run` consumes, processes, commits and reports."""

    output_topic: str = option("predictions", "topic of the predictions", check=_topic, group=TOPICS)
    dead_letter_topic: str = option(
        "sequence-dead-letters", "topic of the input records that cannot be used", check=_topic, group=TOPICS
    )
    anomaly_topic: str = option(
        "sequence-anomalies",
        "topic of the inputs flagged as anomalies (--anomaly-top-g)",
        check=_topic,
        group=TOPICS,
    )
    feedback_topic: str = option(
        "sequence-feedback",
        "topic of the readers' marks on anomalies, keyed like the input and partitioned as it is"
        " (read with --anomaly-top-g)",
        check=_topic,
        group=TOPICS,
    )
    create_topics: bool = option(
        True, "create missing output, dead-letter, anomaly, feedback and state topics", group=TOPICS
    )
    replication_factor: int | None = replication_factor_option("the topics it creates", TOPICS)
    top_k: int = option(
        3,
        "most likely next tokens each prediction record lists, with their probabilities (0: none)",
        check=at_least(0),
        group=PREDICTIONS,
    )
    anomaly_top_g: int = option(
        0,
        "an input whose token is not among its key's previous G most likely is an anomaly, published"
        " to --anomaly-topic (0: off)",
        check=at_least(0),
        group=PREDICTIONS,
    )
    processing_guarantee: str = option(
        "exactly_once",
        "exactly_once: predictions, dead letters, snapshots and offsets in one transaction per commit;"
        " at_least_once: offsets committed after the predictions are flushed",
        choices=GUARANTEES,
        group=PROCESSING,
    )
    commit_interval_ms: int = option(100, "how often to commit", check=at_least(1), group=PROCESSING)
    snapshot_interval_s: float = option(
        10.0, "at_least_once: how often to write the snapshots", check=_positive, group=PROCESSING
    )
    auto_offset_reset: str = option(
        "earliest",
        "where a new group starts reading (earliest: learn from the history in the topic)",
        choices=AUTO_OFFSET_RESETS,
        group=PROCESSING,
    )
    max_poll_records: int = option(500, "records per poll at most", check=at_least(1), group=PROCESSING)
    max_poll_interval_ms: int = option(
        300_000,
        "Kafka's limit between polls before the group evicts the consumer",
        check=at_least(1000),
        group=PROCESSING,
    )
    session_timeout_ms: int = option(
        10_000, "the group evicts a consumer silent this long", check=at_least(1000), group=PROCESSING
    )
    workers: int = option(
        0,
        "threads learning partitions in parallel (0: the CPUs this process may use)",
        check=at_least(0),
        group=PROCESSING,
    )
    transaction_timeout_s: float = option(
        30.0,
        "watchdog: a Kafka call (transaction, flush, state read) that takes longer fails the consumer loudly",
        check=_positive,
        group=PROCESSING,
    )
    instance_id: str = option(
        "",
        "stable name of this instance; its transactional id is GROUP-INSTANCE (empty: the host name)",
        check=_instance_id,
        group=PROCESSING,
    )
    reset_state: bool = option(
        False, "ignore the stored learners: assigned partitions start with fresh models", group=PROCESSING
    )
    value_format: str = option(
        "text",
        "text: the value is the token; json: a JSON value's field",
        choices=VALUE_FORMATS,
        group=INPUT,
    )
    value_field: str = option(
        "token",
        "with --value-format json, the field holding the token: a dotted path (event.type; \\. is a"
        " literal dot; digits index an array)",
        parse=_path,
        group=INPUT,
    )
    key_field: str = option(
        "",
        "with --value-format json, the field holding the stream key (a path, user.id) instead of the"
        " record key (empty: the record key)",
        parse=_path,
        group=INPUT,
    )
    max_value_bytes: int = option(
        1024, "longer values go to the dead-letter topic", check=at_least(1), group=INPUT
    )
    max_key_bytes: int = option(
        256, "longer keys go to the dead-letter topic", check=at_least(1), group=INPUT
    )
    http_host: str = option(
        "127.0.0.1", "address of /healthz, /readyz, /metrics and /v1/streams", group=OPERATIONS
    )
    http_port: int = option(
        8000, "port of the HTTP endpoints (0: any free port)", check=_port, group=OPERATIONS
    )
    status_interval_s: float = option(
        10.0, "seconds between status lines in the log (0: none)", check=at_least(0), group=OPERATIONS
    )
    log_format: str = option("text", "log lines as text or JSON", choices=LOG_FORMATS, group=OPERATIONS)
    log_level: str = option("INFO", "least severe level logged", choices=LOG_LEVELS, group=OPERATIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        topics = {
            "--input-topic": self.input_topic,
            "--output-topic": self.output_topic,
            "--dead-letter-topic": self.dead_letter_topic,
            "--state-topic": self.state_topic,
            "--anomaly-topic": self.anomaly_topic,
            "--feedback-topic": self.feedback_topic,
        }
        seen: dict[str, str] = {}
        for flag, topic in topics.items():
            if topic in seen:
                raise ConfigError(f"{flag}: {topic!r} is already the {seen[topic]}; each topic must differ")
            seen[topic] = flag
        if self.value_format == "json" and not self.value_field:
            raise ConfigError("--value-field: required with --value-format json")
        if self.key_field and self.value_format != "json":
            raise ConfigError("--key-field: only with --value-format json")

    @property
    def worker_count(self) -> int:
        """--workers, or the CPUs this process may use when 0."""
        return self.workers or usable_cpus()

    @property
    def instance_name(self) -> str:
        """--instance-id, or the host name (in docker-compose: the replica's container)."""
        return self.instance_id or socket.gethostname()

    @property
    def transactional_id(self) -> str:
        """Stable per instance, so a restarted instance fences its zombie."""
        return f"{self.group_id}-{self.instance_name}"


@dataclass(frozen=True)
class ExportSettings(StateSettings):
    """What `lstm-consumer export` writes."""

    partition: int = option(0, "input partition whose learner to export", check=at_least(0), group=EXPORT)
    out: str = option("model.keras", "path of the Keras model file", group=EXPORT)
    timeout_s: float = option(
        60.0, "give up reading the state topic after this long", check=_positive, group=EXPORT
    )


@dataclass(frozen=True)
class SnapshotSettings(StateSettings):
    """What `lstm-consumer snapshot export|import` move between a file and the state topic."""

    partition: int = option(
        0, "input partition whose learner to back up or replace", check=at_least(0), group=SNAPSHOT
    )
    offset: int = option(
        -1,
        "import: the input offset the learner continues from (-1: the backup's own, else the group's "
        "committed offset, else the partition's end)",
        check=at_least(-1),
        group=SNAPSHOT,
    )
    force: bool = option(
        False,
        "import: even while the consumer group has members (they read it at their next rebalance)",
        group=SNAPSHOT,
    )
    timeout_s: float = option(
        60.0, "give up reading or writing the state topic after this long", check=_positive, group=SNAPSHOT
    )
