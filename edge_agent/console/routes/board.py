"""One board (`/board/<result_id>`): the photo with its boxes, each connector's crop, heatmap,
score against the threshold and model, and the reasons of an ERROR / NOT_DECIDABLE board."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from edge_agent.console.explain import board_reasons, connector_reason
from edge_agent.console.images import ImageUnavailable
from edge_agent.console.rendering import console, render

router = APIRouter()


def inspection(request: Request, result_id: str) -> dict[str, Any]:
    """The journaled board, or 404."""
    record = console(request).journal.inspection(result_id)
    if record is None:
        raise HTTPException(404, f"no board {result_id!r} in the journal")
    return record


def connector_rows(request: Request, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The verdict's connector rows with box, reason, kept crop and latest confirmation."""
    config = console(request).config
    latest = {c["connector"]: c for c in record["confirmations"]}
    rows = []
    for row in record["verdict"].get("connectors", []):
        cid = row.get("id")
        settings = config.connectors.get(cid)
        score, threshold = row.get("score"), row.get("threshold")
        rows.append(
            {
                **row,
                "box": list(settings.box) if settings else None,
                "plain_reason": connector_reason(row),
                "kept": cid in record["crops"],
                "ratio": score / threshold if score is not None and threshold else None,
                "confirmed": latest.get(cid),
            }
        )
    return rows


@router.get("/board/{result_id}", response_class=HTMLResponse)
def board_page(request: Request, result_id: str) -> HTMLResponse:
    state = console(request)
    record = inspection(request, result_id)
    try:
        _, aligned = state.images.board_jpeg(record)
        photo_problem = None if aligned else "shown as taken: it could not be aligned"
        width, height = state.images.reference_size()
    except ImageUnavailable as exc:
        aligned, photo_problem, width, height = False, str(exc), 1, 1
    return render(
        request,
        "board.html",
        record=record,
        verdict=record["verdict"],
        rows=connector_rows(request, record),
        reasons=board_reasons(record["verdict"]),
        aligned=aligned,
        photo_problem=photo_problem,
        ref_width=width,
        ref_height=height,
    )


@router.get("/api/board/{result_id}")
def board_api(request: Request, result_id: str) -> JSONResponse:
    record = inspection(request, result_id)
    return JSONResponse(
        {
            "result_id": result_id,
            "part_id": record["part_id"],
            "evaluation": record["evaluation"],
            "created_at": record["created_at"],
            "verdict": record["verdict"],
            "reasons": board_reasons(record["verdict"]),
            "connectors": connector_rows(request, record),
            "confirmations": record["confirmations"],
        }
    )
