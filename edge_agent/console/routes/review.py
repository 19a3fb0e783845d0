"""Review and confirm (`/review`): unconfirmed NOK and borderline connectors, one at a time with
keyboard shortcuts; `/api/confirm` journals a label through the `edge-inspect confirm` path."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from edge_agent.comms.confirmations import Confirmation, apply_confirmation
from edge_agent.console.journal_reader import BORDERLINE, RESULT_ID
from edge_agent.console.rendering import console, operator, render
from edge_agent.contracts.names import ConnectorId
from edge_agent.store.journal import Journal, JournalError

router = APIRouter()


class ConfirmRequest(BaseModel):
    """A label for one connector, or for the board when `connector` is null."""

    result_id: str = Field(pattern=RESULT_ID.pattern)
    connector: ConnectorId | None = None
    label: Literal["OK", "KO"]


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request) -> HTMLResponse:
    items = console(request).journal.review_queue()
    return render(
        request,
        "review.html",
        items=[item.as_dict() for item in items],
        borderline=BORDERLINE,
    )


@router.get("/api/review")
def review_api(request: Request) -> JSONResponse:
    return JSONResponse([item.as_dict() for item in console(request).journal.review_queue()])


@router.post("/api/confirm")
def confirm(request: Request, body: ConfirmRequest) -> JSONResponse:
    """Journal the label as `edge-inspect confirm` does (same checks, same table)."""
    state = console(request)
    if not state.journal_path.is_file():
        raise HTTPException(409, f"{state.journal_path}: no journal (has the agent run?)")
    by = operator(request)
    try:
        journal = Journal(state.journal_path)
    except JournalError as exc:
        raise HTTPException(503, str(exc)) from None
    try:
        connectors = apply_confirmation(
            journal, Confirmation(body.result_id, body.connector, body.label, by)
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    finally:
        journal.close()
    return JSONResponse(
        {"result_id": body.result_id, "connectors": connectors, "label": body.label, "by": by}
    )
