"""Certificates made at test time with `openssl`: a CA, broker and client certificates, and the
wrong ones (another CA, a broker certificate naming another host, a client signed by another CA).

Kafka reads PEM stores (`ssl.keystore.type=PEM`): the broker's keystore is its PKCS#8 key and
certificate chain in one file, its truststore the CA's certificate.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require

__all__ = ["KEY_PASSWORD", "Certificates", "make_certificates"]

KEY_PASSWORD = "key-pa55-Vr7q"  # the client key's; a test asserts it is never logged
DAYS = "2"


@dataclass(frozen=True)
class Certificates:
    dir: Path
    ca: Path  # signed the brokers' and the client's certificates
    other_ca: Path  # signed nothing the brokers hold
    broker_keystore: Path  # names localhost and 127.0.0.1
    elsewhere_keystore: Path  # names only kafka.example.test
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD
    client_pem: Path  # certificate and unencrypted key in one file
    stranger_cert: Path  # a client certificate signed by other_ca
    stranger_key: Path

    def broker_properties(self, keystore: Path, client_auth: bool) -> list[str]:
        """scripts/kafka --set arguments of a TLS listener with this keystore."""
        items = [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca}",
        ]
        if client_auth:
            items.append("ssl.client.auth=required")
        if keystore == self.elsewhere_keystore:  # the brokers talk to each other on 127.0.0.1
            items.append("ssl.endpoint.identification.algorithm=")
        return [arg for item in items for arg in ("--set", item)]


def _openssl(directory: Path, *args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        require("openssl is needed to make the TLS tests' certificates")
    result = subprocess.run([openssl, *args], cwd=directory, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr[-2000:]}")


def _ca(directory: Path, name: str) -> None:
    _openssl(
        directory,
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", DAYS, "-sha256"),
        *("-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name} (lstm-stream tests)"),
        *("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )


def _signed(directory: Path, name: str, ca: str, san: str | None, password: str = "") -> None:
    """name.key (PKCS#8; encrypted when `password`) and name.pem signed by `ca`."""
    key = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", f"{name}.key"]
    if password:
        key += ["-aes-256-cbc", "-pass", f"pass:{password}"]
    _openssl(directory, *key)
    request = ["req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"]
    if password:
        request += ["-passin", f"pass:{password}"]
    _openssl(directory, *request)
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl(
        directory,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial"),
        *("-days", DAYS, "-sha256", "-out", f"{name}.pem", "-extfile", extensions.name),
    )


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    _ca(directory, "ca")
    _ca(directory, "other-ca")
    _signed(directory, "broker", "ca", "DNS:localhost,IP:127.0.0.1")
    _signed(directory, "elsewhere", "ca", "DNS:kafka.example.test")
    _signed(directory, "client", "ca", None, password=KEY_PASSWORD)
    _signed(directory, "plain-client", "ca", None)
    _signed(directory, "stranger", "other-ca", None)
    ca = (directory / "ca.pem").read_text()
    for name in ("broker", "elsewhere"):
        key, cert = (directory / f"{name}.key").read_text(), (directory / f"{name}.pem").read_text()
        (directory / f"{name}.keystore.pem").write_text(key + cert + ca)
    client_pem = directory / "plain-client-with-key.pem"
    plain = [(directory / f"plain-client.{suffix}").read_text() for suffix in ("pem", "key")]
    client_pem.write_text("".join(plain))
    return Certificates(
        dir=directory,
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        broker_keystore=directory / "broker.keystore.pem",
        elsewhere_keystore=directory / "elsewhere.keystore.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        client_pem=client_pem,
        stranger_cert=directory / "stranger.pem",
        stranger_key=directory / "stranger.key",
    )
