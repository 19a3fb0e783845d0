"""Review and confirm (`/review`): unconfirmed NOK and borderline connectors, one at a time with
keyboard shortcuts or buttons; `/api/confirm` journals a label through the `edge-inspect confirm`
path, `/api/confirm/undo` takes the last one back (audited in the journal)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


class UndoRequest(BaseModel):
    """The reply of a confirmation to take back: its board, connectors and label."""

    result_id: str = Field(pattern=RESULT_ID.pattern)
    connectors: list[ConnectorId] = Field(min_length=1, max_length=64)
    label: Literal["OK", "KO"]


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request) -> HTMLResponse:
    queue = console(request).journal.review_queue()
    return render(request, "review.html", queue=queue.as_dict(), borderline=BORDERLINE)


@router.get("/api/review")
def review_api(request: Request) -> JSONResponse:
    """The queue as the page polls it: the first items and how many there are in all."""
    queue = console(request).journal.review_queue()
    return JSONResponse(queue.as_dict(), headers={"Cache-Control": "no-store"})


@contextmanager
def _journal(request: Request) -> Iterator[Journal]:
    """The station's journal opened for writing, as `edge-inspect confirm` opens it."""
    path = console(request).journal_path
    if not path.is_file():
        raise HTTPException(409, f"{path}: no journal (has the agent run?)")
    try:
        journal = Journal(path)
    except JournalError as exc:
        raise HTTPException(503, str(exc)) from None
    try:
        yield journal
    finally:
        journal.close()


@contextmanager
def _refusal_as_422() -> Iterator[None]:
    """The journal's ValueError (what it refuses and why) as the reply's 422."""
    try:
        yield
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _refuse_a_reshot_board(request: Request, result_id: str) -> None:
    """A re-shot board's crops are not kept (its original's are): a label on it would teach the
    retrain nothing, so it goes on the original."""
    journal = console(request).journal
    original = ((journal.inspection(result_id) or {}).get("verdict") or {}).get("duplicate_of")
    if original:
        part_id = (journal.inspection(original) or {}).get("part_id") or original
        raise HTTPException(
            409,
            f"this photo is a re-shot of board {part_id} (the same image): its crops are kept "
            f"with that board, so confirm it there: /board/{original}",
        )


@router.post("/api/confirm")
def confirm(request: Request, body: ConfirmRequest) -> JSONResponse:
    """Journal the label as `edge-inspect confirm` does (same checks, same table)."""
    _refuse_a_reshot_board(request, body.result_id)
    by = operator(request)
    with _journal(request) as journal, _refusal_as_422():
        connectors = apply_confirmation(
            journal, Confirmation(body.result_id, body.connector, body.label, by)
        )
    return JSONResponse(
        {"result_id": body.result_id, "connectors": connectors, "label": body.label, "by": by}
    )


@router.post("/api/confirm/undo")
def undo(request: Request, body: UndoRequest) -> JSONResponse:
    """Take back the operator's last label of these connectors (they return to the queue); the
    journal keeps what was taken back, by whom and when."""
    by = operator(request)
    with _journal(request) as journal, _refusal_as_422():
        journal.withdraw_confirmations(
            body.result_id, body.connectors, body.label, by, withdrawn_by=by
        )
    return JSONResponse(
        {"result_id": body.result_id, "connectors": body.connectors, "withdrawn": body.label}
    )
