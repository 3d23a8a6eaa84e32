"""Kafka client options shared by the producer and the consumer, in kafka-python's names.

>>> KafkaClientSettings().client_kwargs()["bootstrap_servers"]
['127.0.0.1:9092']
>>> s = KafkaClientSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
...                         sasl_plain_username="app", sasl_plain_password=Secret("pw"))
>>> s
KafkaClientSettings(bootstrap_servers='127.0.0.1:9092', security_protocol='SASL_PLAINTEXT', \
sasl_mechanism='SCRAM-SHA-256', sasl_plain_username='app', sasl_plain_password=Secret('**********'), \
ssl_cafile='')
>>> s.client_kwargs()["sasl_plain_password"]
'pw'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lstm_stream.settings import ConfigError, Secret, option

__all__ = ["SASL_MECHANISMS", "SECURITY_PROTOCOLS", "KafkaClientSettings"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KAFKA = "kafka connection"


@dataclass(frozen=True)
class KafkaClientSettings:
    """Where the broker is and how to authenticate. Inherited by each service's settings."""

    bootstrap_servers: str = option("127.0.0.1:9092", "comma-separated host:port list", group=KAFKA)
    security_protocol: str = option(
        "PLAINTEXT", "Kafka security protocol", choices=SECURITY_PROTOCOLS, group=KAFKA
    )
    sasl_mechanism: str = option(
        "", "SASL mechanism (with a SASL_* protocol)", choices=SASL_MECHANISMS, group=KAFKA
    )
    sasl_plain_username: str = option("", "SASL user name", group=KAFKA)
    sasl_plain_password: Secret = option(Secret(""), "SASL password (never logged)", group=KAFKA)
    ssl_cafile: str = option("", "CA certificate file (PEM) for SSL protocols", group=KAFKA)

    def __post_init__(self) -> None:
        servers = [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]
        if not servers or any(":" not in s or not s.rsplit(":", 1)[1].isdigit() for s in servers):
            raise ConfigError(
                f"--bootstrap-servers: expected host:port[,host:port], got {self.bootstrap_servers!r}"
            )
        if self.security_protocol.startswith("SASL_"):
            if not self.sasl_mechanism:
                raise ConfigError(
                    f"--sasl-mechanism: required with --security-protocol {self.security_protocol}"
                )
            if not self.sasl_plain_username or not self.sasl_plain_password:
                raise ConfigError(
                    "--sasl-plain-username/--sasl-plain-password: required with a SASL protocol"
                )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_plain_username
            kwargs["sasl_plain_password"] = self.sasl_plain_password.get()
        if self.ssl_cafile:
            kwargs["ssl_cafile"] = self.ssl_cafile
        return kwargs
