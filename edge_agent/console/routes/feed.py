"""The live feed (`/`): boards newest first, filters, paging; rows refreshed by polling."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from edge_agent.console.journal_reader import EVALUATIONS, FeedFilter
from edge_agent.console.rendering import TEMPLATES, console, render

router = APIRouter()
PAGE = 50


def _time(value: str | None, name: str) -> str | None:
    """A `datetime-local` value (UTC) as the journal's ISO form, or None when empty."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.removesuffix("Z")).replace(tzinfo=None)
    except ValueError:
        raise HTTPException(422, f"{name} {value!r} is not a date and time") from None
    return moment.isoformat(timespec="milliseconds") + "Z"


def feed_filter(request: Request) -> FeedFilter:
    """The filter named by the query string; unknown values are refused, not ignored."""
    params = request.query_params
    evaluation = params.get("evaluation") or None
    if evaluation is not None and evaluation not in EVALUATIONS:
        raise HTTPException(422, f"evaluation {evaluation!r} is not one of {EVALUATIONS}")
    connector = params.get("connector") or None
    if connector is not None and connector not in console(request).config.connectors:
        raise HTTPException(422, f"connector {connector!r} is not one of this station's")
    part_id = (params.get("part_id") or "").strip()[:64] or None
    return FeedFilter(
        evaluation=evaluation,
        connector=connector,
        part_id=part_id,
        since=_time(params.get("since"), "since"),
        until=_time(params.get("until"), "until"),
    )


def page_url(request: Request, before: int | None = None) -> str:
    """The feed with the same filters (empty ones left out), from `before` or the newest."""
    query = {k: v for k, v in request.query_params.items() if v and k != "before"}
    if before is not None:
        query["before"] = str(before)
    return f"/?{urlencode(query)}" if query else "/"


@router.get("/", response_class=HTMLResponse)
def feed_page(request: Request, before: int | None = Query(None, ge=0)) -> HTMLResponse:
    state = console(request)
    rows = state.journal.feed(feed_filter(request), before=before, limit=PAGE)
    return render(
        request,
        "feed.html",
        rows=rows,
        live=before is None,
        cursor=rows[0].cursor if rows else 0,
        newest_url=page_url(request),
        older_url=page_url(request, rows[-1].cursor) if len(rows) == PAGE else None,
        evaluations=EVALUATIONS,
        connectors=list(state.config.connectors),
        query=dict(request.query_params),
    )


@router.get("/feed/rows", response_class=HTMLResponse)
def feed_rows(request: Request, after: int = Query(..., ge=0)) -> HTMLResponse:
    """Rows newer than the cursor, as table rows; the new cursor in `X-Feed-Cursor`."""
    rows = console(request).journal.feed(feed_filter(request), after=after, limit=PAGE)
    response = TEMPLATES.TemplateResponse(request, "_feed_rows.html", {"rows": rows})
    response.headers["X-Feed-Cursor"] = str(rows[0].cursor if rows else after)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/api/feed")
def feed_api(
    request: Request,
    before: int | None = Query(None, ge=0),
    after: int | None = Query(None, ge=0),
    limit: int = Query(PAGE, ge=1, le=500),
) -> JSONResponse:
    rows = console(request).journal.feed(
        feed_filter(request), before=before, after=after, limit=limit
    )
    return JSONResponse(
        {
            "boards": [row.as_dict() for row in rows],
            "older": rows[-1].cursor if len(rows) == limit else None,
        }
    )
