"""One board (`/board/<result_id>`): the photo with its boxes, each connector's crop beside the
reference's and the heatmap, score against the threshold and model, why it is not OK in plain
words, and for a re-shot photo the board it repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from edge_agent.console.explain import board_reasons, connector_reason, without_paths
from edge_agent.console.images import ImageUnavailable
from edge_agent.console.rendering import console, render

router = APIRouter()
JUDGED = ("OK", "NOK")  # boards whose connectors a person can confirm
UNREADABLE = ("input", "decode")  # error stages that already say why the photo is not shown


def inspection(request: Request, result_id: str) -> dict[str, Any]:
    """The journaled board, or 404."""
    record = console(request).journal.inspection(result_id)
    if record is None:
        raise HTTPException(404, f"no board {result_id!r} in the journal")
    return record


def _reason_beside(row: dict[str, Any], verdict: dict[str, Any]) -> str | None:
    """A connector's reason for its card; one the board's own error already says is not
    repeated there."""
    if verdict.get("error") and str(row.get("reason", "")).startswith("not inspected: "):
        return "not inspected: see why above"
    return connector_reason(row)


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
                "plain_reason": _reason_beside(row, record["verdict"]),
                "kept": cid in record["crops"],
                "ratio": score / threshold if score is not None and threshold else None,
                "confirmed": latest.get(cid),
            }
        )
    return rows


def original_of(request: Request, record: dict[str, Any]) -> dict[str, Any] | None:
    """For a re-shot photo (`duplicate_of`): the first board of the same image."""
    original = record["verdict"].get("duplicate_of")
    if not original:
        return None
    first = console(request).journal.inspection(original)
    return {
        "result_id": original,
        "part_id": first["part_id"] if first else None,
        "created_at": first["created_at"] if first else None,
    }


def source_name(record: dict[str, Any]) -> str:
    """The photo as a person knows it: its file name (never the server's path) and camera."""
    name = Path(record.get("source_path") or record.get("source_uri") or "").name
    return " · ".join(filter(None, (name, record.get("camera") and f"camera {record['camera']}")))


@router.get("/board/{result_id}", response_class=HTMLResponse)
def board_page(request: Request, result_id: str) -> HTMLResponse:
    state = console(request)
    record = inspection(request, result_id)
    reasons = board_reasons(record["verdict"])
    try:
        _, aligned = state.images.board_jpeg(record)
        photo_problem = None if aligned else "shown as taken: it could not be aligned"
        width, height = state.images.reference_size()
    except ImageUnavailable as exc:
        aligned, photo_problem, width, height = False, without_paths(str(exc)), 1, 1
        if (record["verdict"].get("error") or {}).get("stage") in UNREADABLE:
            photo_problem = "no photo to show: it could not be read (see above why)"
    original = original_of(request, record)
    return render(
        request,
        "board.html",
        record=record,
        verdict=record["verdict"],
        rows=connector_rows(request, record),
        reasons=reasons,
        source=source_name(record),
        original=original,
        confirmable=record["evaluation"] in JUDGED and original is None,
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
            "source": source_name(record),
            "original": original_of(request, record),
            "connectors": connector_rows(request, record),
            "confirmations": record["confirmations"],
        }
    )
