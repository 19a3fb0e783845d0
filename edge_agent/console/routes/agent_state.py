"""`/api/agent-state`: the agent's state for the banner every page polls (live, not ready and
why, unreachable since when, drift states)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from edge_agent.console.rendering import console

router = APIRouter()


@router.get("/api/agent-state")
def agent_state_api(request: Request) -> JSONResponse:
    state = console(request)
    found = state.agent.state(state.config)
    return JSONResponse(found.as_dict(), headers={"Cache-Control": "no-store"})
