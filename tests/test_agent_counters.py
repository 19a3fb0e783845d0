"""A bench reads the agent's counters off a real /metrics page (the agent's own Telemetry,
served by prometheus_client) and turns them into per-board figures."""

from __future__ import annotations

import pytest
from prometheus_client import start_http_server

from edge_agent.ops.telemetry import Telemetry
from trainer.benches.agent_counters import AgentCounters
from trainer.harness.local_broker import free_port


def board(telemetry: Telemetry, capture_s: float, monitor_s: float) -> None:
    telemetry.observe_board("OK", [("J1", "OK")], {"decode": 0.01, "total": 0.05})
    telemetry.add_drift_cpu("capture", capture_s)
    telemetry.add_drift_cpu("monitor", monitor_s)


def test_drift_cpu_per_board_over_the_run_and_since_a_reading() -> None:
    telemetry = Telemetry()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=telemetry.registry)
    try:
        telemetry.add_drift_cpu("monitor", 0.3)  # a one-off at start, before any board
        for _ in range(10):
            board(telemetry, 0.0001, 0.0002)
        halfway = AgentCounters.read(port)
        for _ in range(10):
            board(telemetry, 0.0001, 0.0002)
        final = AgentCounters.read(port)
    finally:
        server.shutdown()
        thread.join()
    assert final.boards == 20
    assert final.stage_means_ms()["total"] == pytest.approx(50.0)
    whole = final.drift_cpu_ms()
    assert whole["monitor"] == pytest.approx(1000 * (0.3 + 20 * 0.0002) / 20, abs=1e-3)
    later = final.drift_cpu_ms(since=halfway)
    assert later == pytest.approx({"capture": 0.1, "monitor": 0.2, "total": 0.3}, abs=1e-3)
