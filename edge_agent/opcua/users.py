"""OPC UA users: `name:pbkdf2 hash` lines of a password file, or a trusted client certificate."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

import structlog
from asyncua.crypto import uacrypto
from asyncua.crypto.permission_rules import User, UserRole

log = structlog.get_logger(__name__)
ITERATIONS = 200_000


def hash_password(password: str, salt: str | None = None) -> str:
    """`pbkdf2_sha256$iterations$salt$hex` of `password`."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), ITERATIONS).hex()
    return f"pbkdf2_sha256${ITERATIONS}${salt}${digest}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations)).hex()
    return hmac.compare_digest(got, digest)


def read_users(path: Path) -> dict[str, str]:
    """name -> stored hash from the users file (none when there is no file)."""
    if not path.is_file():
        return {}
    users = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, stored = line.strip().partition(":")
        if sep and name and not name.startswith("#"):
            users[name] = stored
    return users


def add_user(path: Path, name: str, password: str) -> None:
    """Add or replace `name` in the users file."""
    users = read_users(path)
    users[name] = hash_password(password)
    if not path.exists():  # a new file: owner only; an existing one keeps its owner and mode
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
    path.write_text("".join(f"{n}:{h}\n" for n, h in users.items()), encoding="utf-8")


async def trusted_certificates(folder: Path) -> dict[bytes, str]:
    """DER bytes -> file name of every certificate in the trusted folder."""
    found: dict[bytes, str] = {}
    for file in sorted(folder.glob("*")) if folder.is_dir() else []:
        if file.suffix.lower() in (".der", ".pem", ".crt"):
            cert = await uacrypto.load_certificate(file)
            found[uacrypto.der_from_x509(cert)] = file.stem
    return found


class StationUsers:
    """asyncua's user manager: a password user or a trusted certificate, else refused."""

    def __init__(self, users: dict[str, str], certs: dict[bytes, str], anonymous: bool) -> None:
        self.users, self.certs, self.anonymous = users, certs, anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None,
        certificate: Any = None,
    ) -> User | None:  # fmt: skip
        if username is not None:
            stored = self.users.get(username)
            if stored is not None and check_password(password or "", stored):
                return User(role=UserRole.User, name=username)
            log.warning("opcua_login_refused", user=username, why="wrong user or password")
            return None
        if certificate is not None:
            name = self.certs.get(bytes(certificate))
            if name is not None:
                return User(role=UserRole.User, name=f"cert:{name}")
            log.warning("opcua_login_refused", why="untrusted user certificate")
            return None
        if self.anonymous:
            return User(role=UserRole.User, name="anonymous")
        log.warning("opcua_login_refused", why="anonymous access is off")
        return None
