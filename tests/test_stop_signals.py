"""Stop signals end the agent cleanly however they arrive: a burst of SIGTERMs (systemd's stop and
a parent's death signal together, a double Ctrl-C) must not deadlock it in its own handler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from test_agent_start_refusals import ROOT, write_station

from trainer.harness.local_broker import free_port

SIGNALS_IN_BURST = 200


def alive(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_burst_of_sigterms_stops_the_agent_cleanly(tmp_path: Path) -> None:
    port = free_port()
    config = write_station(tmp_path, [500, 400, 100, 50], port)
    log = tmp_path / "agent.log"
    with open(log, "wb") as output:
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=output,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 60
        while not alive(port):
            assert agent.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        for _ in range(SIGNALS_IN_BURST):
            agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()

    events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line[:1] == "{"]
    assert code == 0, log.read_text()[-2000:]
    assert events.count("agent stopped") == 1
