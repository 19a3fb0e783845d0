"""The console's FastAPI application: routers, static files and the security middleware."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from edge_agent import __version__
from edge_agent.console.routes import board, connector, feed, health, images, login, review, setup
from edge_agent.console.routes.agent_state import router as agent_state_router
from edge_agent.console.security import Guard, SessionCodec
from edge_agent.console.state import ConsoleState

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}


def create_app(config_path: Path, users: dict[str, str] | None = None) -> FastAPI:
    """The console for the station of `config_path`; with `users`, everything needs a login."""
    codec = SessionCodec(secrets.token_bytes(32))
    app = FastAPI(title="edge-inspect console", version=__version__, docs_url=None, redoc_url=None)
    app.state.console = ConsoleState(Path(config_path), codec, dict(users or {}))
    for module in (feed, board, images, review, connector, health, setup, login):
        app.include_router(module.router)
    app.include_router(agent_state_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def plain_errors(request: Request, exc: HTTPException) -> Response:
        """Errors as one readable line (the pages show it as it is)."""
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    app.add_middleware(Guard, codec=codec, login_required=bool(users))
    return app
