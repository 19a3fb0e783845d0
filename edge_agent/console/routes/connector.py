"""Connectors (`/connectors`, `/connector/<id>`): recent scores against the threshold, NOK per
hour, the drift state and its statistic over time, model versions and history, promote /
rollback through the `models` lifecycle code, and the last retrain's outcome and gate reason."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from edge_agent.console.agent_health import recalibration, retrain_status
from edge_agent.console.charts import drift_chart, histogram, hourly_rates
from edge_agent.console.journal_reader import CAPTURE, JournalReader
from edge_agent.console.rendering import console, operator, render
from edge_agent.contracts.bundle import REJECTED_DIR, BundleError, connector_dir, read_manifest
from edge_agent.feedback import lifecycle

router = APIRouter()
HISTORY_HOURS = 24
HISTOGRAM_BOARDS = 500
TEST_METRICS = ("false_reject_rate", "recall", "synthetic_recall", "n_test_ok", "n_test_ko")
"""What a version's manifest says of its test split, shown beside it."""


class PromoteRequest(BaseModel):
    """Promote the candidate (version null) or a named installed version."""

    version: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}\.\d+$")


def _connector(request: Request, connector: str, inspected: bool = False) -> str:
    """The connector id when the station has it (and, with `inspected`, inspects it), else 404."""
    state = console(request)
    known = state.connectors if inspected else list(state.config.connectors)
    if connector not in known:
        raise HTTPException(404, f"{connector!r} is not one of {known}")
    return connector


def _since(hours: int) -> str:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _versions(request: Request, connector: str) -> list[dict[str, Any]]:
    """Every installed and refused version, newest first, with its manifest summary."""
    models = console(request).config.paths.models
    current = lifecycle.state(models, connector)
    root = connector_dir(models, connector)
    found = [(v, root / v, False) for v in current.versions]
    found += [(v, root / REJECTED_DIR / v, True) for v in current.rejected]
    rows = []
    for version, folder, refused in found:
        row: dict[str, Any] = {"version": version, "refused": refused}
        try:
            manifest = read_manifest(folder)
            row.update(
                created_at=manifest.created_at,
                method=manifest.method,
                n_train=manifest.training.n_train,
                calibration=manifest.calibration.mode,
                guarantee=manifest.calibration.guarantee,
                test={key: manifest.metrics.get(key) for key in TEST_METRICS},
            )
        except BundleError as exc:
            row["problem"] = str(exc)
        for name in ("gate.json", lifecycle.REASON_FILE):
            path = folder / name
            if path.is_file():
                try:
                    row["gate"] = json.loads(path.read_text(encoding="utf-8")).get("summary")
                except ValueError:
                    row["gate"] = f"{name} unreadable"
        row["status"] = (
            "refused"
            if refused
            else {current.active: "active", current.candidate: "candidate"}.get(version, "")
        )
        rows.append(row)
    return sorted(rows, key=lambda r: lifecycle.version_key(r["version"]), reverse=True)


def connector_summary(request: Request, connector: str) -> dict[str, Any]:
    """Everything the connector page shows, as plain data (also the JSON API)."""
    state = console(request)
    rows = state.journal.connector_rows(connector, _since(HISTORY_HOURS * 30))
    recent = rows[-HISTOGRAM_BOARDS:]
    threshold = next((r.threshold for r in reversed(recent) if r.threshold), 1.0)
    day = _since(HISTORY_HOURS)
    try:
        current = lifecycle.state(
            state.config.paths.models, connector, state.config.connectors[connector].crop_size
        )
        history = lifecycle.read_history(state.config.paths.models, connector)["events"]
        problem = None
    except lifecycle.LifecycleError as exc:
        current, history, problem = None, [], str(exc)
    versions = _versions(request, connector) if current else []
    return {
        "connector": connector,
        "enabled": state.config.connectors[connector].enabled,
        "threshold": threshold,
        "scores": [r.score for r in recent if r.score is not None],
        "histogram": histogram([r.score for r in recent if r.score is not None], threshold),
        "hourly": hourly_rates([(r.created_at, r.evaluation) for r in rows if r.created_at >= day]),
        "boards": len(recent),
        "state": current.as_dict() if current else None,
        "versions": versions,
        "history": list(reversed(history))[:20],
        "lifecycle_problem": problem,
        "drift": drift_view(state.journal, connector),
        "recalibration": recalibration(state.config, connector),
        "retrain": retrain_view(retrain_status(state.config), connector, versions),
    }


def drift_view(journal: JournalReader, connector: str) -> dict[str, Any] | None:
    """The connector's drift state, its statistic over time and the capture's state when that is
    not ok (a capture change is what the connector follows); None before any drift data."""
    states = journal.drift_states()
    history = journal.drift_history(connector)
    current = states.get(connector)
    if current is None and not history:
        return None
    capture = states.get(CAPTURE)
    points = [(p.at, p.statistic, p.state) for p in history]
    return {
        "state": current.as_dict() if current else None,
        "chart": drift_chart(points, journal.drift_warning_level(connector)),
        "capture": capture.as_dict() if capture and capture.state != "ok" else None,
    }


def retrain_view(
    status: dict[str, Any] | None, connector: str, versions: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The trainer's last (or running) run as it concerns `connector`: `running` (retrained
    now), `waiting` (its turn comes in this run), else its result, with `now` the status its
    version has today (a candidate promoted since is active)."""
    if not status:
        return None
    pending = list(status.get("pending") or [])
    running = status.get("state") == "running"
    result = (status.get("connectors") or {}).get(connector) or {}
    now = next(
        (v["status"] or "installed" for v in versions if v["version"] == result.get("version")),
        None,
    )
    return {
        "run_id": status.get("run_id"),
        "state": status.get("state"),
        "started_at": status.get("started_at"),
        "finished_at": status.get("finished_at"),
        "running": running and pending[:1] == [connector],
        "waiting": running and connector in pending[1:],
        "now": now,
        **result,
    }


@router.get("/connectors", response_class=HTMLResponse)
def connectors_page(request: Request) -> HTMLResponse:
    state = console(request)
    models = state.config.paths.models
    drift = state.journal.drift_states()
    rows = []
    for cid, settings in state.config.connectors.items():
        try:
            current = lifecycle.state(models, cid, settings.crop_size).as_dict()
        except lifecycle.LifecycleError as exc:
            current = {"problem": str(exc)}
        seen = drift.get(cid)
        rows.append(
            {
                "id": cid,
                "enabled": settings.enabled,
                "drift": seen.as_dict() if seen else None,
                **current,
            }
        )
    return render(request, "connectors.html", rows=rows)


@router.get("/connector/{connector}", response_class=HTMLResponse)
def connector_page(request: Request, connector: str) -> HTMLResponse:
    summary = connector_summary(request, _connector(request, connector))
    return render(request, "connector.html", c=summary)


@router.get("/api/connector/{connector}")
def connector_api(request: Request, connector: str) -> JSONResponse:
    summary = connector_summary(request, _connector(request, connector))
    summary.pop("histogram")
    return JSONResponse(summary)


def _lifecycle_reply(connector: str, event: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"connector": connector, **event})


@router.post("/api/connector/{connector}/promote")
def promote(request: Request, connector: str, body: PromoteRequest) -> JSONResponse:
    """`edge-inspect models promote CONNECTOR [VERSION]`; the running agent follows."""
    config = console(request).config
    cid = _connector(request, connector, True)
    try:
        event = lifecycle.promote(
            config.paths.models,
            cid,
            body.version,
            operator(request),
            crop_size=config.connectors[cid].crop_size,
        )
    except (lifecycle.LifecycleError, BundleError) as exc:
        raise HTTPException(409, str(exc)) from None
    return _lifecycle_reply(connector, event)


@router.post("/api/connector/{connector}/rollback")
def rollback(request: Request, connector: str) -> JSONResponse:
    """`edge-inspect models rollback CONNECTOR`; the running agent follows."""
    config = console(request).config
    cid = _connector(request, connector, True)
    try:
        event = lifecycle.rollback(
            config.paths.models, cid, operator(request), config.connectors[cid].crop_size
        )
    except (lifecycle.LifecycleError, BundleError) as exc:
        raise HTTPException(409, str(exc)) from None
    return _lifecycle_reply(connector, event)
