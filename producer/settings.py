"""The producer's settings: one frozen, validated dataclass per source, built only by `main`.

Every field is a flag and an environment variable with the prefix ``LSTM_PRODUCER_``:

>>> from lstm_stream.settings import load
>>> s = load(PatternSettings, PREFIX, ["--keys", "3"], env={"LSTM_PRODUCER_RATE": "50"})
>>> (s.keys, s.rate, s.topic, len(s.unit()))
(3, 50.0, 'sequence', 27)
>>> try:
...     load(PatternSettings, PREFIX, ["--spec", "4,8*x"], env={})
... except ConfigError as exc:
...     print(exc)
--spec (env LSTM_PRODUCER_SPEC): position 5: expected a repeat count after '*'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import codec

from lstm_stream.json_fields import parse_path
from lstm_stream.kafka_options import KafkaClientSettings, replication_factor_option
from lstm_stream.settings import ConfigError, at_least, option
from producer.spec import SEED_SPEC, parse_spec

__all__ = [
    "COMPRESSION_TYPES",
    "PREFIX",
    "VALUE_FORMATS",
    "FileSettings",
    "PatternSettings",
    "ProducerSettings",
]

PREFIX = "LSTM_PRODUCER_"
VALUE_FORMATS = ("text", "json")
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
# Kafka's request.timeout.ms (kafka-python's default, not exposed): delivery must outlast it.
REQUEST_TIMEOUT_MS = 30_000
_CODECS = {"gzip": codec.has_gzip, "snappy": codec.has_snappy, "lz4": codec.has_lz4, "zstd": codec.has_zstd}

OUTPUT, PACING, BATCHING, REPORTING = "output", "pacing", "batching and delivery", "reporting"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be > 0, got {value!r}"


def _probability(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be between 0 and 1, got {value!r}"


def _path(text: str) -> str:
    parse_path(text)  # its ValueError becomes a ConfigError naming --value-field
    return text


def _spec(text: str) -> str:
    parse_spec(text)  # its SpecError (a ValueError) becomes a ConfigError naming --spec
    return text


@dataclass(frozen=True)
class ProducerSettings(KafkaClientSettings):
    """Options every source shares (and all that `stdin` has)."""

    topic: str = option("sequence", "topic to publish to", group=OUTPUT)
    key: str = option("", "key of every message (empty: null key, the default stream)", group=OUTPUT)
    value_format: str = option(
        "text",
        'text: the UTF-8 token; json: a JSON object with the token at --value-field ({"token": "4"})',
        choices=VALUE_FORMATS,
        group=OUTPUT,
    )
    value_field: str = option(
        "token",
        "with --value-format json, the field holding the token: a dotted path (event.type writes "
        '{"event": {"type": "4"}}; \\. is a literal dot)',
        parse=_path,
        group=OUTPUT,
    )
    create_topic: bool = option(False, "create the topic first (fine if it exists)", group=OUTPUT)
    partitions: int = option(1, "partitions of a topic --create-topic makes", check=at_least(1), group=OUTPUT)
    replication_factor: int | None = replication_factor_option("a topic --create-topic makes", OUTPUT)
    rate: float = option(0.0, "messages per second (0: as fast as possible)", check=at_least(0), group=PACING)
    count: int | None = option(
        None,
        "stop after this many messages (unset: endless for pattern, all input otherwise)",
        check=at_least(1),
        group=PACING,
    )
    connect_timeout_s: float = option(
        15.0,
        "give up when the broker or topic is not there within this time",
        check=_positive,
        group=BATCHING,
    )
    linger_ms: int = option(10, "wait this long to fill a batch", check=at_least(0), group=BATCHING)
    batch_size: int = option(262_144, "bytes per partition batch", check=at_least(1), group=BATCHING)
    compression_type: str = option("none", "batch compression", choices=COMPRESSION_TYPES, group=BATCHING)
    delivery_timeout_ms: int = option(
        120_000, "a message not acknowledged within this time fails", check=at_least(1), group=BATCHING
    )
    max_pending: int = option(
        100_000,
        "at this many unacknowledged messages, pause until half are acknowledged",
        check=at_least(1),
        group=BATCHING,
    )
    quiet: bool = option(False, "no progress bar, rate lines or summary; errors only", group=REPORTING)
    report_interval_s: float = option(
        10.0, "seconds between rate lines (when no progress bar)", check=_positive, group=REPORTING
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        available = _CODECS.get(self.compression_type)
        if available is not None and not available():
            raise ConfigError(f"--compression-type: {self.compression_type} needs a library not installed")
        if self.delivery_timeout_ms < self.linger_ms + REQUEST_TIMEOUT_MS:
            raise ConfigError(
                f"--delivery-timeout-ms: must be >= --linger-ms + {REQUEST_TIMEOUT_MS} (the request "
                f"timeout), got {self.delivery_timeout_ms}"
            )

    def producer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's `KafkaProducer`."""
        timeout_ms = int(self.connect_timeout_s * 1000)
        return {
            **self.client_kwargs(),
            "client_id": "lstm-producer",
            "enable_idempotence": True,
            "acks": "all",
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "compression_type": None if self.compression_type == "none" else self.compression_type,
            "delivery_timeout_ms": self.delivery_timeout_ms,
            "bootstrap_timeout_ms": timeout_ms,
            # Bounds the wait for a topic's metadata: a missing topic fails instead of hanging.
            "max_block_ms": timeout_ms,
        }

    def admin_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's `KafkaAdminClient`."""
        return {
            **self.client_kwargs(),
            "client_id": "lstm-producer-admin",
            "bootstrap_timeout_ms": int(self.connect_timeout_s * 1000),
        }

    def message_key(self) -> str | None:
        return self.key or None


@dataclass(frozen=True)
class PatternSettings(ProducerSettings):
    """The `pattern` source: a spec repeated, with optional noise and several keyed streams."""

    spec: str = option(
        SEED_SPEC, "the repeating unit (see 'Spec grammar' below)", parse=_spec, group="pattern"
    )
    noise: float = option(
        0.0,
        "probability of replacing a token by a random one of the unit's",
        check=_probability,
        group="pattern",
    )
    keys: int = option(
        1,
        "streams named stream-0, stream-1, ..., spread evenly over the topic's partitions, at random phases",
        check=at_least(1),
        group="pattern",
    )
    seed: int = option(0, "seed of the phases and the noise", group="pattern")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.keys > 1 and self.key:
            raise ConfigError("--key: only with --keys 1 (several streams are keyed stream-0, stream-1, ...)")

    def unit(self) -> list[str]:
        """The tokens of one period."""
        return parse_spec(self.spec)


@dataclass(frozen=True)
class FileSettings(ProducerSettings):
    """The `file` source: a text file with one token per line, or a CSV column."""

    path: str = option("", "the file to read (or give it as the PATH argument)", group="file")
    csv: bool = option(False, "read a CSV file with a header row", group="file")
    column: str = option("", "CSV column holding the tokens (required with --csv)", group="file")
    key_column: str = option("", "CSV column holding each message's key (empty cells: --key)", group="file")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ConfigError(f"PATH (or --path, env {PREFIX}PATH): required")
        if self.csv and not self.column:
            raise ConfigError("--column: required with --csv")
        if not self.csv and (self.column or self.key_column):
            raise ConfigError("--column/--key-column: only with --csv")
