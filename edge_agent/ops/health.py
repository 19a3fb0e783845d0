"""Local HTTP endpoints for the supervisor and Prometheus: /livez, /readyz and /metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge_agent.contracts.config import HealthSettings
from edge_agent.ops.telemetry import Telemetry

log = structlog.get_logger(__name__)

_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}

Heartbeat = Callable[[], bool]
Readiness = Callable[[], tuple[bool, dict[str, Any]]]


class HealthPortError(OSError):
    """The health endpoints cannot listen where the config says; the message says where."""


class HealthServer:
    """Serves the health endpoints from a daemon thread; `port` is the bound port."""

    def __init__(
        self,
        settings: HealthSettings,
        *,
        heartbeat: Heartbeat,
        readiness: Readiness,
        telemetry: Telemetry,
    ) -> None:
        self._settings = settings
        self._heartbeat = heartbeat
        self._readiness = readiness
        self._telemetry = telemetry
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (differs from the settings when they ask for port 0)."""
        if self._server is None:
            raise RuntimeError("health server not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a daemon thread; HealthPortError when the address cannot be bound."""
        host, port = self._settings.host, self._settings.port
        try:
            server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise HealthPortError(
                f"health endpoints cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(another agent running, or set health.port in the config)"
            ) from None
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="health", daemon=True
        )
        self._thread.start()
        log.info("health_listening", host=self._settings.host, port=self.port)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for a GET of `path`."""
        route = urlsplit(path).path
        if route == "/livez":
            result = _call(self._heartbeat)
            alive = not isinstance(result, Exception) and bool(result)
            status = HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE
            return status, "application/json", _json({"alive": alive})
        if route == "/readyz":
            result = _call(self._readiness)
            if isinstance(result, Exception):
                ready, details = False, {"error": f"readiness check failed: {result}"}
            else:
                ready, details = result
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return status, "application/json", _json({"ready": bool(ready), **details})
        if route == "/metrics":
            return HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self._telemetry.registry)
        return HTTPStatus.NOT_FOUND, "application/json", _json({"error": f"no route {route}"})


def _call(check: Callable[[], Any]) -> Any:
    try:
        return check()
    except Exception as exc:
        log.exception("health_check_failed")
        return exc


def _json(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, default=str, sort_keys=True) + "\n").encode()


def _handler(owner: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "edge-inspect-health"

        def do_GET(self) -> None:
            status, content_type, body = owner.respond(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """No access log: supervisors and Prometheus poll these endpoints every few seconds."""

    return Handler


def readyz_url(health: HealthSettings) -> str:
    """The /readyz address of an agent that binds `health.host`:`health.port`."""
    host = _ANY_ADDRESS.get(health.host, health.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{health.port}/readyz"
