"""A real mosquitto for the fleet tests: its own config in a temp folder, a free 127.0.0.1 port, never a service.

Also an independent subscriber (Debian's ``mosquitto_sub``), a password file made with
``mosquitto_passwd``, and a locally generated CA with a server certificate for 127.0.0.1 (TLS).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from labbridge.config import parse_config
from labbridge.fleet.service import FleetService, attach
from tests.web_support import CONFIG_PATH, Api, free_port, running_app

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def need_mosquitto() -> None:
    if not Path(MOSQUITTO).exists() or not shutil.which("mosquitto_sub"):
        pytest.fail("Debian's mosquitto and mosquitto-clients are needed (apt-get install -y mosquitto "
                    "mosquitto-clients; .ci/run does it)")


class Broker:
    """One mosquitto process; ``restart()`` keeps its port and persistence (retained messages, sessions)."""

    def __init__(self, folder: Path, *, password_file: Path | None = None, acl_file: Path | None = None,
                 tls: dict[str, Path] | None = None) -> None:
        need_mosquitto()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'false' if password_file else 'true'}",
                 "persistence true", f"persistence_location {folder}/", "autosave_interval 1",
                 f"log_dest file {folder}/mosquitto.log", "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # keep access to the temp folder (mosquitto drops to 'mosquitto' as root)
        if password_file:
            lines.append(f"password_file {password_file}")
        if acl_file:
            lines.append(f"acl_file {acl_file}")
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                                     f" {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not open its port within 30 s: " + self.log())

    def stop(self) -> None:
        """Like a broker going down for maintenance: SIGTERM, persistence written."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class Subscriber:
    """``mosquitto_sub`` on a topic filter: an MQTT client that is not labbridge's, recording what arrives."""

    def __init__(self, broker: Broker, topic: str = "labbridge/v1/#", *, user: str | None = None,
                 password: str | None = None, extra: list[str] | None = None) -> None:
        cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
               "-t", topic, "-F", "%U\t%r\t%q\t%D\t%t\t%p"]
        if user:
            cmd += ["-u", user, "-P", password or ""]
        cmd += extra or []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at, retained, qos, correlation, topic, payload = line.rstrip("\n").split("\t", 5)
            try:
                body: Any = json.loads(payload)
            except ValueError:
                body = payload
            with self._lock:
                self.messages.append({"at": float(at), "retained": retained == "1", "qos": int(qos),
                                      "correlation": correlation, "topic": topic, "body": body})

    def on(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m["topic"].endswith(suffix)]

    def wait(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 30.0, what: str = "messages") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = predicate(list(self.messages))
            if found:
                return found
            time.sleep(0.05)
        with self._lock:
            seen = [(m["topic"], str(m["body"])[:120]) for m in self.messages[-20:]]
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {seen}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def pub(broker: Broker, topic: str, payload: str, *, retain: bool = False) -> None:
    """Publish one message with Debian's ``mosquitto_pub``, as a client that is not labbridge's."""
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic, "-m", payload,
                    *(["-r"] if retain else [])], check=True, timeout=30)


def password_file(folder: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file (hashed by ``mosquitto_passwd``, as a broker's admin makes it)."""
    path = folder / "passwords"
    for i, (user, password) in enumerate(users.items()):
        args = ["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(path), user, password]
        subprocess.run(args, check=True, capture_output=True)
    return path


def make_ca(folder: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A throwaway CA and a server certificate for ``host`` (as an IP address SAN), PEM files in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("labbridge test CA")).issuer_name(name("labbridge test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(host)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def lab_data(broker_url: str, lab: str = "truck-1", machines: tuple[str, ...] = ("mill-1", "lathe-1"),
             **fleet: Any) -> dict[str, Any]:
    """The shipped config cut to mill-1 (GRBL, its port absent) and lathe-1 (DNC only: no live source, a still state).

    No connection of these ever leaves the machine: the serial ports do not exist and the lathe's
    Modbus address is removed.
    """
    data = yaml.safe_load(CONFIG_PATH.read_text())
    mill, lathe = data["machines"]["mill-1"], data["machines"]["lathe-1"]
    mill["connection"] = {"serial": {"port": "/nonexistent/labbridge-test-tty"}}
    lathe["connection"] = {"dnc": {"port": "/nonexistent/labbridge-test-dnc"}}
    data["machines"] = {k: v for k, v in (("mill-1", mill), ("lathe-1", lathe)) if k in machines}
    data["lab"] = {"id": lab, "name": f"InfoMobil {lab}"}
    data["fleet"] = {"broker": broker_url, "keepalive": 5, **fleet}
    return data


@contextmanager
def lab_app(tmp: Path, data: dict[str, Any], **kw: Any) -> Iterator[tuple[Api, FleetService]]:
    """``labbridge serve`` in this process (TestClient) with its fleet link; users for every role signed in."""
    services: list[FleetService] = []

    def extend(ctx: Any) -> None:
        service = attach(ctx, base_dir=tmp)
        assert service is not None
        services.append(service)

    with running_app(tmp / "lab", parse_config(data, "test config"), extend=extend, **kw) as api:
        yield api, services[0]
