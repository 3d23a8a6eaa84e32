"""Kafka client options shared by the producer and the consumer, in kafka-python's names.

Checked when the settings are built, so a mistake is a configuration error (exit 2) naming the
option, never a client that retries for ever: SASL options need a SASL protocol, TLS files an
SSL one; every file given must be readable and hold what its option says (the TLS context is
built once, here, and handed to every client).

>>> KafkaClientSettings().client_kwargs()["bootstrap_servers"]
['127.0.0.1:9092']
>>> s = KafkaClientSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
...                         sasl_plain_username="app", sasl_plain_password=Secret("pw"))
>>> s.sasl_plain_password
Secret('**********')
>>> s.client_kwargs()["sasl_plain_password"]
'pw'
>>> KafkaClientSettings(sasl_mechanism="PLAIN")
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --sasl-mechanism: only with --security-protocol SASL_PLAINTEXT or \
SASL_SSL, got PLAINTEXT
>>> KafkaClientSettings(security_protocol="SSL", ssl_cafile="/no/such/ca.pem")
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --ssl-cafile: cannot read /no/such/ca.pem: No such file or directory
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from lstm_stream.secret import Secret
from lstm_stream.settings import ConfigError, at_least, option

__all__ = [
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "KafkaClientSettings",
    "replication_factor_option",
    "tls_context",
]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KAFKA = "kafka connection"
_SASL_OPTIONS = ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
_TLS_OPTIONS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _readable(option_name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"{_flag(option_name)}: cannot read {path}: {exc.strerror or exc}") from None


def tls_context(
    cafile: str = "", certfile: str = "", keyfile: str = "", password: str = "", check_hostname: bool = True
) -> ssl.SSLContext:
    """The client TLS context, as kafka-python builds it from the same options (TLS 1.2 at least,
    the broker's certificate verified against `cafile`, else the system's CAs; the client
    certificate for mutual TLS). A file that cannot be used is a `ConfigError` naming its option."""
    texts = {}
    for name, path in (("ssl_cafile", cafile), ("ssl_certfile", certfile), ("ssl_keyfile", keyfile)):
        if path:
            texts[name] = _readable(name, path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    if cafile:
        try:
            context.load_verify_locations(cafile)
        except ssl.SSLError as exc:
            raise ConfigError(f"--ssl-cafile: {cafile} holds no PEM certificate ({exc.reason})") from None
    else:
        context.load_default_certs()
    if certfile:
        key_text = texts.get("ssl_keyfile", texts["ssl_certfile"])
        encrypted = b"ENCRYPTED" in key_text
        if encrypted and not password:
            raise ConfigError(
                f"--ssl-password: the private key in {keyfile or certfile} is encrypted: give its password"
            )
        try:
            # A callable, never None: OpenSSL would ask for a missing password on the terminal.
            context.load_cert_chain(certfile, keyfile or None, lambda: password.encode())
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"--ssl-certfile/--ssl-keyfile: cannot use {certfile}"
                f"{' with ' + keyfile if keyfile else ''}: {_key_problem(exc, encrypted)}"
            ) from None
    return context


def _key_problem(exc: OSError, encrypted: bool) -> str:
    reason = str(getattr(exc, "reason", None) or exc)
    if "KEY_VALUES_MISMATCH" in reason:
        return "the private key does not belong to the certificate"
    if encrypted:
        return f"wrong --ssl-password ({reason})"
    return f"not a PEM certificate and its private key ({reason})"


def replication_factor_option(topics: str, group: str) -> Any:
    """The --replication-factor option of a command that creates `topics`."""
    return option(
        None,
        f"replicas of each partition of {topics} (unset: the broker's default.replication.factor)",
        check=at_least(1),
        group=group,
    )


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
    ssl_cafile: str = option(
        "",
        "CA certificate(s) (PEM) that signed the brokers' certificates (SSL protocols; empty: the system's)",
        group=KAFKA,
    )
    ssl_certfile: str = option(
        "", "client certificate (PEM) for mutual TLS; may hold the private key too", group=KAFKA
    )
    ssl_keyfile: str = option("", "private key (PEM) of --ssl-certfile, when not in it", group=KAFKA)
    ssl_password: Secret = option(Secret(""), "password of the private key (never logged)", group=KAFKA)
    ssl_check_hostname: bool = option(
        True, "check that each broker's certificate names the host connected to", group=KAFKA
    )

    def __post_init__(self) -> None:
        servers = [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]
        if not servers or any(":" not in s or not s.rsplit(":", 1)[1].isdigit() for s in servers):
            raise ConfigError(
                f"--bootstrap-servers: expected host:port[,host:port], got {self.bootstrap_servers!r}"
            )
        self._check_sasl()
        self._check_tls()

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def _check_sasl(self) -> None:
        if not self.uses_sasl:
            given = [_flag(name) for name in _SASL_OPTIONS if getattr(self, name)]
            if given:
                raise ConfigError(
                    f"{'/'.join(given)}: only with --security-protocol SASL_PLAINTEXT or SASL_SSL, "
                    f"got {self.security_protocol}"
                )
            return
        if not self.sasl_mechanism:
            raise ConfigError(f"--sasl-mechanism: required with --security-protocol {self.security_protocol}")
        if not self.sasl_plain_username or not self.sasl_plain_password:
            raise ConfigError("--sasl-plain-username/--sasl-plain-password: required with a SASL protocol")

    def _check_tls(self) -> None:
        if not self.uses_tls:
            given = [_flag(name) for name in _TLS_OPTIONS if getattr(self, name)]
            if given:
                raise ConfigError(
                    f"{'/'.join(given)}: only with --security-protocol SSL or SASL_SSL, "
                    f"got {self.security_protocol}"
                )
            return
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ConfigError("--ssl-keyfile: only with --ssl-certfile (the certificate it belongs to)")
        if self.ssl_password and not self.ssl_certfile:
            raise ConfigError(
                "--ssl-password: only with --ssl-certfile (it unlocks the client's private key)"
            )
        self.tls_context()  # every file readable and usable, or a ConfigError naming it

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context every client of this process uses (SSL protocols only)."""
        return tls_context(
            self.ssl_cafile,
            self.ssl_certfile,
            self.ssl_keyfile,
            self.ssl_password.get(),
            self.ssl_check_hostname,
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
        }
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_plain_username
            kwargs["sasl_plain_password"] = self.sasl_plain_password.get()
        if self.uses_tls:
            kwargs["ssl_context"] = self.tls_context()
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
        return kwargs
