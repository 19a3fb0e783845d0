"""Pictures: aligned board photos, kept crops, heatmaps and their colour scale, the reference and
its crop of each connector, set-up previews.

Every route takes a result id and a connector id, both checked against the journal and the
config; the files behind them are found by `console.images`, never named by the request.
"""

from __future__ import annotations

import re

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from edge_agent.console.images import ImageUnavailable
from edge_agent.console.rendering import console
from edge_agent.console.routes.board import inspection
from edge_agent.inspect.heatmap import VMAX, colourise
from edge_agent.inspect.imaging import encode_png

router = APIRouter(prefix="/img")
_BOX = re.compile(r"^\d{1,5},\d{1,5},\d{1,5},\d{1,5}$")
CACHE = {"Cache-Control": "private, max-age=300"}


def _image(data: bytes, media_type: str, cache: bool = True) -> Response:
    headers = CACHE if cache else {"Cache-Control": "no-store"}
    return Response(data, media_type=media_type, headers=headers)


def _row(record: dict, connector: str) -> dict:
    for row in record["verdict"].get("connectors", []):
        if row.get("id") == connector:
            return row
    raise HTTPException(404, f"this board has no connector {connector!r}")


@router.get("/reference.jpg")
def reference(request: Request) -> Response:
    try:
        return _image(console(request).images.reference_jpeg(), "image/jpeg", cache=False)
    except ImageUnavailable as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/reference/{connector}.png")
def reference_crop(request: Request, connector: str) -> Response:
    """The connector's box in the reference image."""
    settings = console(request).config.connectors.get(connector)
    if settings is None:
        raise HTTPException(404, f"this station has no connector {connector!r}")
    try:
        return _image(console(request).images.reference_crop(tuple(settings.box)), "image/png")
    except ImageUnavailable as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/heatmap-scale.png")
def heatmap_scale() -> Response:
    """The heatmaps' colours from 0 (left) to `VMAX` times the threshold (right)."""
    ramp = np.linspace(0.0, VMAX, 256, dtype=np.float32)[None, :]
    return _image(encode_png(colourise(ramp, (256, 12))), "image/png")


@router.get("/board/{result_id}.jpg")
def board(request: Request, result_id: str) -> Response:
    record = inspection(request, result_id)
    try:
        data, _ = console(request).images.board_jpeg(record)
    except ImageUnavailable as exc:
        raise HTTPException(404, str(exc)) from None
    return _image(data, "image/jpeg")


@router.get("/crop/{result_id}/{connector}.png")
def crop(request: Request, result_id: str, connector: str) -> Response:
    record = inspection(request, result_id)
    _row(record, connector)
    state = console(request)
    try:
        return _image(encode_png(state.images.kept_crop(record, connector)), "image/png")
    except ImageUnavailable as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/heatmap/{result_id}/{connector}.png")
def heatmap(request: Request, result_id: str, connector: str) -> Response:
    record = inspection(request, result_id)
    version = (_row(record, connector).get("model") or {}).get("version")
    if not version:
        raise HTTPException(404, f"{connector} was not scored by a model on this board")
    state = console(request)
    try:
        kept = state.images.kept_crop(record, connector)
        return _image(state.heatmaps.overlay(connector, version, kept), "image/png")
    except ImageUnavailable as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/preview/{result_id}.png")
def preview(request: Request, result_id: str, box: str = Query(...)) -> Response:
    """A box (x,y,w,h in reference pixels) cut from this board as the agent would cut it."""
    if not _BOX.match(box):
        raise HTTPException(422, "box must be x,y,width,height in whole pixels")
    x, y, width, height = (int(v) for v in box.split(","))
    record = inspection(request, result_id)
    try:
        data = console(request).images.preview(record, (x, y, width, height))
    except ImageUnavailable as exc:
        raise HTTPException(404, str(exc)) from None
    return _image(data, "image/png")
