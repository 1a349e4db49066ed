"""HTTPS for the lab's Wi-Fi: a local certificate made on first start, or the lab's own.

Phones reach the dashboard over the network, and without TLS every password and
token crosses it in clear text. ``labbridge serve --tls`` makes a self-signed
certificate on first start (an ECDSA P-256 key, valid five years, naming
localhost, this computer's name and its addresses), keeps it in the data directory
(``tls/``, key 0600) and reuses it on every later start, so a phone that trusted it
once keeps trusting it. Its SHA-256 fingerprint is printed so that a user can
compare it with what the browser shows. ``--certfile/--keyfile`` use a certificate
the lab already has.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from labbridge.errors import ConfigError

CERT_NAME, KEY_NAME = "cert.pem", "key.pem"
VALID_DAYS = 5 * 365


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path
    fingerprint: str  # SHA-256, colon-separated hex, as browsers show it
    created: bool  # made just now (first start)


def fingerprint(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def local_names(extra: list[str] | None = None) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses this computer answers to (for the certificate's subjectAltName)."""
    names = {"localhost"}
    addresses = {"127.0.0.1", "::1"}
    host = socket.gethostname()
    if host:
        names.add(host)
    try:
        for info in socket.getaddrinfo(host, None):
            addresses.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    for item in extra or []:
        try:
            addresses.add(str(ipaddress.ip_address(item)))
        except ValueError:
            if item:
                names.add(item)
    addresses.discard("0.0.0.0")
    addresses.discard("::")
    return sorted(names), sorted(addresses)


def make_certificate(names: list[str], addresses: list[str]) -> tuple[bytes, bytes]:
    """A new self-signed certificate and its private key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labbridge " + (names[-1] if names else "lab")),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "labbridge (self-signed)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_certificate(data_dir: Path, extra_names: list[str] | None = None) -> Certificate:
    """The data dir's certificate, made on first use."""
    tls_dir = data_dir / "tls"
    certfile, keyfile = tls_dir / CERT_NAME, tls_dir / KEY_NAME
    if certfile.exists() and keyfile.exists():
        return Certificate(certfile, keyfile, fingerprint(certfile.read_bytes()), created=False)
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_pem, key_pem = make_certificate(*local_names(extra_names))
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    certfile.write_bytes(cert_pem)
    return Certificate(certfile, keyfile, fingerprint(cert_pem), created=True)


def given_certificate(certfile: Path, keyfile: Path) -> Certificate:
    """A certificate the lab brings (--certfile/--keyfile), checked to be readable PEM."""
    try:
        cert_pem = certfile.read_bytes()
        keyfile.read_bytes()
        return Certificate(certfile, keyfile, fingerprint(cert_pem), created=False)
    except OSError as exc:
        raise ConfigError(f"{exc.filename}: cannot read the TLS file: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{certfile}: not a PEM certificate ({exc})") from None
