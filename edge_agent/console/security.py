"""Sessions, the login gate and CSRF protection, as one ASGI middleware around every request.

The session is a signed cookie (HMAC-SHA256 with a per-process secret): a random id and, once
logged in, the user. Every request that is not GET/HEAD/OPTIONS must carry the session's CSRF
token, in the `X-CSRF-Token` header or a `csrf_token` form field, and no foreign `Origin`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "edge_inspect_session"
SESSION_SECONDS = 12 * 3600
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OPEN_PATHS = ("/login", "/static/")
MAX_FORM_BYTES = 64_000


@dataclass(frozen=True)
class Session:
    """Who is on the other end: a random session id and, after a login, the user name."""

    sid: str
    user: str | None
    expires: int


class SessionCodec:
    """Signs and checks session cookies; derives each session's CSRF token."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, data: bytes) -> str:
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def encode(self, session: Session) -> str:
        body = json.dumps([session.sid, session.user, session.expires]).encode()
        data = base64.urlsafe_b64encode(body).decode()
        return f"{data}.{self._sign(data.encode())}"

    def decode(self, value: str | None) -> Session | None:
        if not value or "." not in value:
            return None
        data, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(data.encode())):
            return None
        try:
            sid, user, expires = json.loads(base64.urlsafe_b64decode(data))
        except ValueError:
            return None
        return Session(sid, user, expires) if expires > time.time() else None

    def new(self, user: str | None = None) -> Session:
        return Session(secrets.token_urlsafe(16), user, int(time.time()) + SESSION_SECONDS)

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf:{session.sid}".encode())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _cookie(scope: Scope) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    jar = SimpleCookie()
    jar.load(raw)
    return jar[COOKIE].value if COOKIE in jar else None


class Guard:
    """Session cookie, login requirement (when users are configured) and CSRF check."""

    def __init__(self, app: ASGIApp, codec: SessionCodec, login_required: bool) -> None:
        self.app = app
        self.codec = codec
        self.login_required = login_required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self.codec.decode(_cookie(scope))
        fresh = session is None
        if session is None:
            session = self.codec.new()
        scope.setdefault("state", {})
        scope["state"]["session"] = session
        scope["state"]["csrf_token"] = self.codec.csrf_token(session)
        path: str = scope["path"]
        if self.login_required and session.user is None and not path.startswith(OPEN_PATHS):
            await self._refuse_anonymous(scope, send, path)
            return
        if scope["method"] not in SAFE_METHODS:
            receive, problem = await self._check_csrf(scope, receive, session)
            if problem:
                await _plain(send, 403, problem)
                return
        if fresh:
            send = self._setting_cookie(send, session)
        await self.app(scope, receive, send)

    async def _refuse_anonymous(self, scope: Scope, send: Send, path: str) -> None:
        if path.startswith("/api/") or scope["method"] not in SAFE_METHODS:
            await _plain(send, 401, "log in first")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", f"/login?next={quote(target, safe='')}".encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _check_csrf(
        self, scope: Scope, receive: Receive, session: Session
    ) -> tuple[Receive, str | None]:
        """(receive replaying the body, None) when the token is right, else a reason."""
        origin = _header(scope, b"origin")
        host = _header(scope, b"host")
        if origin and origin != "null" and urlsplit(origin).netloc != host:
            return receive, f"cross-origin request from {origin} refused"
        expected = self.codec.csrf_token(session)
        token = _header(scope, b"x-csrf-token")
        replay = receive
        content_type = _header(scope, b"content-type") or ""
        if token is None and content_type.startswith("application/x-www-form-urlencoded"):
            body, replay = await _read_body(receive)
            if len(body) <= MAX_FORM_BYTES:
                token = parse_qs(body.decode("utf-8", "replace")).get("csrf_token", [None])[0]
        if not token or not hmac.compare_digest(token, expected):
            return replay, "missing or wrong CSRF token: reload the page and try again"
        return replay, None

    def _setting_cookie(self, send: Send, session: Session) -> Send:
        cookie = (
            f"{COOKIE}={self.codec.encode(session)}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={SESSION_SECONDS}"
        )

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k == b"set-cookie" and COOKIE.encode() in v for k, v in headers):
                    headers.append((b"set-cookie", cookie.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


def session_cookie(codec: SessionCodec, session: Session) -> dict[str, Any]:
    """Keyword arguments for `Response.set_cookie` that store `session`."""
    return {
        "key": COOKIE,
        "value": codec.encode(session),
        "max_age": SESSION_SECONDS,
        "httponly": True,
        "samesite": "strict",
        "path": "/",
    }


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
