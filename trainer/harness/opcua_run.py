"""The OPC UA server as its own process beside a real agent, and what its clients need.

Used by `edge-inspect bench --opcua-clients N` and the tests: a station config with an
`[opcua]` section, the server's certificate, a password user and a trusted client certificate,
`edge-inspect opcua` started as the unit starts it, and a client over Basic256Sha256
SignAndEncrypt.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.contracts.config import load_config
from edge_agent.opcua.server import make_certificate
from edge_agent.opcua.users import add_user
from trainer.harness.station_run import die_with_parent, end_child


@dataclass(frozen=True)
class ClientIdentity:
    """A client's certificate (trusted by the server), key, application URI and user."""

    cert: Path
    key: Path
    uri: str
    user: str
    password: str


async def client_certificate(folder: Path, name: str) -> tuple[Path, Path, str]:
    """A self-signed client certificate and key in `folder`, and its application URI."""
    uri = f"urn:test:{name}"
    key, cert = folder / f"{name}-key.pem", folder / f"{name}-cert.der"
    await setup_self_signed_certificate(
        key, cert, uri, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": name}
    )
    return cert, key, uri


def write_opcua_config(station_config: Path, target: Path, pki: Path, port: int) -> Path:
    """`target` (beside the station's config, so its relative paths hold): the station's
    settings with an `[opcua]` section on `port` whose certificates and users live in `pki`."""
    document = tomlkit.parse(station_config.read_text(encoding="utf-8"))
    document["opcua"] = {
        "enabled": True, "host": "127.0.0.1", "port": port,
        "certificate": str(pki / "server-cert.der"), "private_key": str(pki / "server-key.pem"),
        "trusted_certs": str(pki / "trusted"), "users_file": str(pki / "users"),
    }  # fmt: skip
    target.write_text(tomlkit.dumps(document), encoding="utf-8")
    return target


async def secure_station(
    config_path: Path, folder: Path, user: str, password: str, name: str = "client"
) -> ClientIdentity:
    """The server's certificate, `user` in its users file, a client certificate it trusts."""
    config = load_config(config_path)
    await make_certificate(config)
    add_user(config.opcua.users_file, user, password)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key, uri = await client_certificate(folder, name)
    shutil.copy(cert, config.opcua.trusted_certs / cert.name)
    return ClientIdentity(cert, key, uri, user, password)


async def secure_client(url: str, server_cert: Path, identity: ClientIdentity) -> Client:
    """An asyncua client (not yet connected) for SignAndEncrypt with the identity's user."""
    client = Client(url, timeout=5)
    client.application_uri = identity.uri
    client.set_user(identity.user)
    client.set_password(identity.password)
    await client.set_security(
        SecurityPolicyBasic256Sha256, str(identity.cert), str(identity.key),
        server_certificate=str(server_cert), mode=ua.MessageSecurityMode.SignAndEncrypt,
    )  # fmt: skip
    return client


class OpcuaProcess:
    """`edge-inspect opcua` as a child process with the agent's environment (same state and
    health port), at `nice -n 10` like its unit (Nice=10)."""

    def __init__(self, config_path: Path, env: dict[str, str], log_path: Path) -> None:
        self.config_path, self.env, self.log_path = config_path, env, log_path
        config = load_config(config_path)
        self.port = config.opcua.port
        self.url = f"opc.tcp://127.0.0.1:{self.port}/{config.opcua.path}"
        self.server_cert = config.opcua.certificate
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> OpcuaProcess:
        """Start it and wait until its endpoint takes connections."""
        command = [
            "nice", "-n", "10", sys.executable, "-m", "edge_agent.cli", "opcua",
            "--config", str(self.config_path),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the OPC UA server did not start; see {self.log_path}")
            time.sleep(0.2)
        return self

    def kill(self, signum: int = signal.SIGKILL) -> None:
        end_child(self.process, signum)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
