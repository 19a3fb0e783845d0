"""Page rendering: the Jinja2 templates with what every page needs (user, CSRF token, nav)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from edge_agent.console.operator_name import from_cookie
from edge_agent.console.state import ConsoleState

OPERATOR_COOKIE = "edge_inspect_operator"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
NAV = (
    ("/", "Live feed"),
    ("/review", "Review"),
    ("/connectors", "Connectors"),
    ("/health", "Health"),
    ("/setup", "Set-up"),
)


def console(request: Request) -> ConsoleState:
    """The application's shared state."""
    return request.app.state.console


def current_user(request: Request) -> str | None:
    """The logged-in user, or None when the console runs without users."""
    return request.state.session.user


def operator(request: Request) -> str:
    """Who a confirmation or model change is recorded as: `console:<user>`."""
    chosen = from_cookie(request.cookies.get(OPERATOR_COOKIE))
    name = current_user(request) or chosen or "operator"
    return f"console:{name}"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page, with the station name, the user, the CSRF token and the navigation."""
    state = console(request)
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "station": state.config.station.name,
            "user": current_user(request),
            "operator": operator(request).removeprefix("console:"),
            "auth": bool(state.users),
            "csrf_token": request.state.csrf_token,
            "nav": NAV,
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )
