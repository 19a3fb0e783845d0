"""Station set-up (`/setup`): boxes on the reference image, ROIs inside crops, previews cut
from the latest boards, and a save that writes `config.toml` and the ROI JSON."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from edge_agent.console.images import ImageUnavailable
from edge_agent.console.rendering import console, render
from edge_agent.console.station_setup import Layout, SetupError, current_layout, save_layout
from edge_agent.contracts.config import ConfigError
from edge_agent.contracts.names import CONNECTOR_ID_PATTERN

router = APIRouter()
PREVIEW_BOARDS = 3
SEARCHED_BOARDS = 30


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
    state = console(request)
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
    )


@router.get("/api/setup")
def setup_api(request: Request) -> JSONResponse:
    state = console(request)
    return JSONResponse(
        {
            "connectors": current_layout(state.config, state.config_path),
            "preview_boards": preview_boards(request),
        }
    )


@router.post("/api/setup")
def save(request: Request, layout: Layout) -> JSONResponse:
    """Check and write the layout; the console then reads the new config."""
    state = console(request)
    with state.lock:
        try:
            saved = save_layout(
                state.config_path, state.config, layout, state.images.reference_size()
            )
            state.reload()
        except (SetupError, ConfigError) as exc:
            raise HTTPException(422, str(exc)) from None
        except ImageUnavailable as exc:
            raise HTTPException(409, str(exc)) from None
    return JSONResponse(
        {
            "config": str(saved.config),
            "backup": str(saved.backup),
            "roi_file": str(saved.roi_file),
            "connectors": current_layout(state.config, state.config_path),
            "note": "restart the agent to inspect with the new boxes",
        }
    )
