"""Log in and out (only when users are configured), and the operator name without users."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from edge_agent.console.auth import check_login
from edge_agent.console.operator_name import NameRefused, checked_name, cookie_value
from edge_agent.console.rendering import OPERATOR_COOKIE, console, render
from edge_agent.console.security import session_cookie

router = APIRouter()


def _safe_next(target: str | None) -> str:
    """Only a path on this console (never another site) to go back to after logging in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {key: values[0] for key, values in parse_qs(body).items()}


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next), failed=False)


@router.post("/login")
async def login(request: Request) -> Response:
    state = console(request)
    form = await _form(request)
    name, password = form.get("user", ""), form.get("password", "")
    target = _safe_next(form.get("next"))
    if not state.users or not check_login(state.users, name, password):
        return render(request, "login.html", status_code=401, next=target, failed=True)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(**session_cookie(state.codec, state.codec.new(user=name)))
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    state = console(request)
    response = RedirectResponse("/login" if state.users else "/", status_code=303)
    response.set_cookie(**session_cookie(state.codec, state.codec.new()))
    return response


@router.post("/operator")
async def set_operator(request: Request) -> Response:
    """Without users: the name confirmations are recorded under (kept in a cookie). A name that
    cannot be kept is refused with the reason (422), never replaced silently."""
    form = await _form(request)
    try:
        name = checked_name(form.get("name", ""))
    except NameRefused as exc:
        raise HTTPException(422, str(exc)) from None
    if "application/json" in request.headers.get("accept", ""):
        response: Response = JSONResponse({"operator": name})
    else:
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    response.set_cookie(OPERATOR_COOKIE, cookie_value(name), max_age=365 * 86400, samesite="strict")
    return response
