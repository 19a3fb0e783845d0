"""Station set-up (`/setup`): boxes on the reference image, ROIs inside crops, previews cut
from the latest boards, a save that writes `config.toml` and the ROI JSON, and the kept backups.

Every page and save reads `config.toml` afresh; the page carries the file's sha256 and a save
from an older version of the file is refused (409)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict

from edge_agent.console.images import ImageUnavailable
from edge_agent.console.layout_request import cancel_request, describe, write_request
from edge_agent.console.rendering import console, operator, render
from edge_agent.console.setup_backups import file_sha256, list_backups
from edge_agent.console.station_setup import (
    Layout,
    SetupError,
    StaleConfig,
    current_layout,
    restore_backup,
    save_layout,
)
from edge_agent.contracts.config import ConfigError
from edge_agent.contracts.names import CONNECTOR_ID_PATTERN

router = APIRouter()


class Restore(BaseModel):
    """A kept backup to put back, and the hash of the file the page was built from."""

    model_config = ConfigDict(extra="forbid")
    name: str
    base_sha256: str


def fresh(request: Request):
    """The console state with `config.toml` read again (another program may have changed it)."""
    state = console(request)
    with state.lock:
        try:
            state.reload()
        except ConfigError as exc:
            raise HTTPException(409, f"{exc}: {UNREADABLE}") from None
    return state


def backups(request: Request) -> list[dict]:
    state = console(request)
    return [
        {"name": b.name, "saved_at": b.saved_at, "by": b.by, "changes": b.changes}
        for b in list_backups(state.config_path)
    ]


PREVIEW_BOARDS = 3
SEARCHED_BOARDS = 30
UNREADABLE = "fix the file (earlier versions are in config-backups/)"


def preview_boards(request: Request) -> list[str]:
    """Result ids of the newest boards whose photos are still on disk."""
    state = console(request)
    found = []
    for record in state.journal.latest_inspected(SEARCHED_BOARDS):
        try:
            state.images.photo_path(record)
        except ImageUnavailable:
            continue
        found.append(record["result_id"])
        if len(found) == PREVIEW_BOARDS:
            break
    return found


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request) -> HTMLResponse:
    state = fresh(request)
    try:
        width, height = state.images.reference_size()
        problem = None
    except ImageUnavailable as exc:
        width, height, problem = 0, 0, str(exc)
    return render(
        request,
        "setup.html",
        layout=current_layout(state.config, state.config_path),
        ref_width=width,
        ref_height=height,
        problem=problem,
        boards=preview_boards(request),
        input_size=state.config.training.input_size,
        id_pattern=CONNECTOR_ID_PATTERN,
        config_name=state.config_path.name,
        config_sha256=file_sha256(state.config_path),
        backups=backups(request),
        pending=describe(state.config),
    )


@router.get("/api/setup")
def setup_api(request: Request) -> JSONResponse:
    state = fresh(request)
    return JSONResponse(
        {
            "connectors": current_layout(state.config, state.config_path),
            "preview_boards": preview_boards(request),
            "config_sha256": file_sha256(state.config_path),
            "backups": backups(request),
            "pending": describe(state.config),
        }
    )


def _saved_reply(request: Request, saved, note: str) -> JSONResponse:
    state = console(request)
    return JSONResponse(
        {
            "config": str(saved.config),
            "backup": str(saved.backup),
            "roi_file": str(saved.roi_file),
            "config_sha256": saved.sha256,
            "changes": saved.changes,
            "connectors": current_layout(state.config, state.config_path),
            "backups": backups(request),
            "note": note,
        }
    )


@router.post("/api/setup")
def save(request: Request, layout: Layout) -> JSONResponse:
    """Check and write the layout; the console then reads the new config."""
    state = console(request)
    with state.lock:
        try:
            state.reload()
        except ConfigError as exc:
            raise HTTPException(409, f"{exc}: {UNREADABLE}") from None
        with _save_refusals():
            saved = save_layout(
                state.config_path,
                state.config,
                layout,
                state.images.reference_size(),
                models_root=state.config.paths.models,
                by=operator(request),
            )
            state.reload()
    return _saved_reply(request, saved, "restart the agent to inspect with the new boxes")


@contextmanager
def _save_refusals() -> Iterator[None]:
    """A refused save as its HTTP answer: 409 for a stale page or a missing image, else 422."""
    try:
        yield
    except (StaleConfig, ImageUnavailable) as exc:
        raise HTTPException(409, str(exc)) from None
    except (SetupError, ConfigError) as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/api/setup/restore")
def restore(request: Request, body: Restore) -> JSONResponse:
    """Put a kept backup back; itself a save (the file it replaces is kept too)."""
    state = console(request)
    with state.lock, _save_refusals():
        saved = restore_backup(
            state.config_path,
            body.name,
            body.base_sha256,
            models_root=state.config.paths.models,
            by=operator(request),
        )
        state.reload()
    return _saved_reply(request, saved, "restart the agent to inspect with the restored boxes")


@router.post("/api/setup/retrain")
def save_and_retrain(request: Request, layout: Layout) -> JSONResponse:
    """ "Save and retrain": the layout waits for models trained for its new boxes; the file
    is not written now (`layout_request.py`)."""
    state = fresh(request)
    with state.lock, _save_refusals():
        write_request(
            state.config_path,
            state.config,
            layout,
            state.images.reference_size(),
            operator(request),
        )
    return JSONResponse({"pending": describe(state.config)})


@router.post("/api/setup/retrain/cancel")
def cancel_retrain(request: Request) -> JSONResponse:
    """Withdraw the pending save-and-retrain request; nothing is switched."""
    state = console(request)
    with state.lock:
        cancelled = cancel_request(state.config, operator(request))
    if cancelled is None:
        raise HTTPException(409, "no save-and-retrain request is pending")
    return JSONResponse({"pending": describe(state.config)})
