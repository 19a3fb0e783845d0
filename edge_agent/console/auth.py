"""Console users: scrypt password hashes in a users file or a systemd credential."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

CREDENTIAL_NAME = "console_users"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_N, _R, _P = 2**14, 8, 1
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class UsersError(ValueError):
    """A users file that cannot be used; the message names the file and line."""


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) of a password, with a fresh random salt."""
    if not password:
        raise ValueError("an empty password is not allowed")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encoded = (base64.b64encode(v).decode() for v in (salt, digest))
    return f"scrypt${_N}${_R}${_P}${'$'.join(encoded)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches a hash made by `hash_password`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def check_login(users: dict[str, str], name: str, password: str) -> bool:
    """Whether the user exists and the password is right (same work either way)."""
    stored = users.get(name)
    matches = verify_password(password, stored or _DUMMY)
    return stored is not None and matches


def users_file(explicit: Path | None) -> Path | None:
    """The users file: `--users`, else `$CREDENTIALS_DIRECTORY/console_users` when not empty.

    The installer creates that credential empty: an empty one means no users configured.
    """
    if explicit is not None:
        return Path(explicit)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    found = Path(credentials) / CREDENTIAL_NAME if credentials else None
    if found is not None and found.is_file() and found.stat().st_size > 0:
        return found
    return None


def load_users(path: Path) -> dict[str, str]:
    """`name:scrypt$...` lines ('#' comments, blank lines ignored) as name -> hash."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsersError(f"{path}: cannot read the users file: {exc.strerror}") from None
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, stored = line.partition(":")
        if not _NAME.match(name) or not stored.startswith("scrypt$") or stored.count("$") != 5:
            raise UsersError(
                f"{path}:{number}: expected NAME:scrypt$... "
                "(make one with `edge-inspect console --hash-password NAME`)"
            )
        users[name] = stored
    if not users:
        raise UsersError(f"{path}: no users in the file")
    return users
