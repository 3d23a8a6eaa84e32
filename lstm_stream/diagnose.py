"""Why the Kafka clients could not connect, in one line, and whether retrying can help.

kafka-python reports a failed bootstrap as `NoBrokersAvailable`, whatever the cause, after its
bootstrap timeout. So before the clients connect, and whenever they fail to, `diagnose` opens
one connection of its own to each bootstrap server with the same TLS context, sends Kafka's
ApiVersions request (which every listener answers before SASL) and reads
the answer, so that the cause gets named: nothing listening, a TLS certificate the client does
not trust, a host name the certificate does not hold, a client certificate the broker refused or
never got, TLS spoken to a plaintext listener or the reverse. The certificate problems are the
configuration's fault (`Diagnosis.configuration`): retrying cannot fix them, so the commands
exit 2. Only certain signs count: a certificate verification error, a TLS alert about the
client's certificate, TLS bytes where Kafka's were expected or the reverse; a connection that is
refused, times out or closes may be a broker restarting, and is retried. Standard library only.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lstm_stream.kafka_options import KafkaClientSettings
from lstm_stream.settings import ConfigError

__all__ = ["Diagnosis", "diagnose", "unless_misconfigured"]

API_VERSIONS_REQUEST = struct.pack(">ihhih", 10 + len(b"lstm-stream"), 18, 0, 1, len(b"lstm-stream"))
API_VERSIONS_REQUEST += b"lstm-stream"
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL")
S = TypeVar("S", bound=KafkaClientSettings)
_CLIENT_CERT_REFUSED = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN")


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong with one server, and whether it is the configuration's fault."""

    configuration: bool
    message: str


def diagnose(settings: KafkaClientSettings, timeout_s: float = 5.0) -> Diagnosis | None:
    """The first certificate problem found, else what the servers had in common, else None
    (every server answered: the cause lies beyond TLS, such as SASL credentials)."""
    context = settings.tls_context() if settings.uses_tls else None
    problems = []
    for server in [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()]:
        found = _diagnose_one(server, context, settings, timeout_s)
        if found is not None and found.configuration:
            return found
        if found is not None:
            problems.append(found.message)
    return Diagnosis(False, "; ".join(problems)) if problems else None


def unless_misconfigured(settings: S, find: Callable[[S], Diagnosis | None] = diagnose) -> Diagnosis | None:
    """`find(settings)`, raising a `ConfigError` (exit 2) where it names a configuration fault."""
    found = find(settings)
    if found is not None and found.configuration:
        raise ConfigError(found.message)
    return found


def _diagnose_one(
    server: str, context: ssl.SSLContext | None, settings: KafkaClientSettings, timeout_s: float
) -> Diagnosis | None:
    host, port = server.rsplit(":", 1)
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    except OSError as exc:
        return Diagnosis(False, f"{server}: {exc.strerror or exc}")
    try:
        if context is None:
            return _plaintext(server, sock, settings)
        return _tls(server, sock, context, host)
    finally:
        sock.close()


def _answer(sock: socket.socket) -> bytes:
    """The first 8 bytes the server sends back (fewer if it closes the connection)."""
    sock.sendall(API_VERSIONS_REQUEST)
    data = b""
    while len(data) < 8 and (chunk := sock.recv(8 - len(data))):
        data += chunk
    return data


def _is_kafka(answer: bytes) -> bool:
    """A Kafka response to our request: a sane size, then our correlation id (1)."""
    if len(answer) < 8:
        return False
    size, correlation = struct.unpack(">ii", answer)
    return bool(4 <= size <= 1 << 24 and correlation == 1)


def _plaintext(server: str, sock: socket.socket, settings: KafkaClientSettings) -> Diagnosis | None:
    try:
        answer = _answer(sock)
    except TimeoutError:
        return Diagnosis(False, f"{server}: no answer to Kafka's first request")
    except OSError as exc:
        answer, reason = b"", exc.strerror or str(exc)
    else:
        reason = "closed the connection"
    if _is_kafka(answer):
        return None
    tls = answer[:1] in (b"\x15", b"\x16") and answer[1:2] == b"\x03"  # a TLS alert or handshake record
    # Only an answer in TLS is certain; a closed connection may be a broker going down.
    return Diagnosis(
        tls,
        f"{server} {'answered with TLS' if tls else reason} at Kafka's first request: is its listener "
        f"TLS (--security-protocol SSL or SASL_SSL, not {settings.security_protocol})?",
    )


def _tls(server: str, sock: socket.socket, context: ssl.SSLContext, host: str) -> Diagnosis | None:
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        return Diagnosis(True, _untrusted(server, exc, context))
    except ssl.SSLError as exc:
        return _tls_error(server, exc, during="handshake")
    except OSError as exc:
        return Diagnosis(False, f"{server}: TLS handshake: {exc.strerror or exc}")
    try:
        if _is_kafka(_answer(tls)):
            return None
        return Diagnosis(
            True,
            f"{server} closed the connection after the TLS handshake: it may require a client "
            "certificate (--ssl-certfile, --ssl-keyfile) that it did not get or does not trust",
        )
    except ssl.SSLError as exc:
        return _tls_error(server, exc, during="first request")
    except OSError as exc:
        return Diagnosis(False, f"{server}: after the TLS handshake: {exc.strerror or exc}")
    finally:
        tls.close()


def _untrusted(server: str, exc: ssl.SSLCertVerificationError, context: ssl.SSLContext) -> str:
    detail = exc.verify_message or exc.reason or str(exc)
    if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
        return (
            f"TLS: the certificate of {server} does not name the host connected to ({detail}): connect by "
            "a name the certificate holds, or turn the check off with --no-ssl-check-hostname"
        )
    return (
        f"TLS: the certificate of {server} is not trusted ({detail}): --ssl-cafile must hold the CA "
        "that signed the brokers' certificates"
    )


def _tls_error(server: str, exc: ssl.SSLError, during: str) -> Diagnosis:
    reason = str(exc.reason or exc).upper()
    if isinstance(exc, ssl.SSLEOFError) or "UNEXPECTED_EOF" in reason or "EOF" in reason:
        # No answer, just a closed connection: a plaintext listener does that, so does a broker
        # going down; not certain enough to give up on.
        return Diagnosis(
            False,
            f"{server} closed the connection during the TLS {during}: is its listener TLS "
            "(SSL or SASL_SSL), and does it want a client certificate (--ssl-certfile)?",
        )
    if any(code in reason for code in _NOT_TLS):
        return Diagnosis(
            True,
            f"{server} does not speak TLS ({exc.reason}): is its listener PLAINTEXT or SASL_PLAINTEXT "
            "rather than SSL or SASL_SSL?",
        )
    if any(code in reason for code in _CLIENT_CERT_REFUSED):
        return Diagnosis(
            True,
            f"TLS: {server} refused the client ({exc.reason}): it wants a client certificate signed by a CA "
            "it trusts (--ssl-certfile, --ssl-keyfile)",
        )
    return Diagnosis(True, f"TLS {during} with {server} failed: {exc.reason or exc}")
