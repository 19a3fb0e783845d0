"""Station health (`/health`): agent readiness, broker, outbox, disk, models, journal totals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from edge_agent.console.agent_health import agent_health, disk, retrain_status
from edge_agent.console.agent_state import drift_entries
from edge_agent.console.journal_reader import JournalCounts
from edge_agent.console.rendering import console, render
from edge_agent.contracts.clock import utc_now

router = APIRouter()


def station_health(request: Request) -> dict:
    """The agent's own answer plus what the console reads from the files."""
    state = console(request)
    config = state.config
    hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        journal = dataclasses.asdict(state.journal.counts(hour_ago))
    except sqlite3.DatabaseError as exc:  # a damaged journal: the rest of the page still shows
        journal = {**dataclasses.asdict(JournalCounts()), "error": f"journal unreadable: {exc}"}
    agent = agent_health(config)
    return {
        "checked_at": utc_now(),
        "agent": dataclasses.asdict(agent),
        "drift": drift_entries(agent.details),
        "journal": journal,
        "disks": [
            {
                "name": name,
                "path": str(found.path),
                "free_gb": found.free_gb,
                "total_gb": found.total_gb,
                "free_share": found.free_share,
            }
            for name, path in (("state", config.paths.state), ("models", config.paths.models))
            if (found := disk(path)) is not None
        ],
        "connectors": state.connectors,
        "trainer": retrain_status(config),
    }


@router.get("/health", response_class=HTMLResponse)
def health_page(request: Request) -> HTMLResponse:
    return render(request, "health.html", h=station_health(request))


@router.get("/api/health")
def health_api(request: Request) -> JSONResponse:
    return JSONResponse(station_health(request), headers={"Cache-Control": "no-store"})
