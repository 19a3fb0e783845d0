"""Health endpoints, the metrics they expose and the `edge-inspect health` exit codes."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.cli import main
from edge_agent.contracts.config import HealthSettings
from edge_agent.ops.health import HealthServer
from edge_agent.ops.telemetry import Telemetry

ALLOWED_LABELS = {
    *("connector", "evaluation", "stage", "reason", "version", "sha256", "le", "kind", "code")
}


class Probe:
    """The agent's state as the health server sees it; tests flip it."""

    def __init__(self) -> None:
        self.alive = True
        self.ready = True
        self.failure: Exception | None = None
        self.details: dict[str, Any] = {"models": {"J1": "2026-08-31.1"}, "outbox": 0}

    def heartbeat(self) -> bool:
        return self.alive

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.failure is not None:
            raise self.failure
        return self.ready, self.details


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture
def server(probe, telemetry) -> Iterator[HealthServer]:
    server = HealthServer(
        HealthSettings(host="127.0.0.1", port=0),
        heartbeat=probe.heartbeat,
        readiness=probe.readiness,
        telemetry=telemetry,
    )
    server.start()
    yield server
    server.stop()


def get(server: HealthServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_livez_follows_the_heartbeat(server, probe):
    assert get(server, "/livez") == (200, b'{"alive": true}\n')
    probe.alive = False
    assert get(server, "/livez")[0] == 503


def test_readyz_is_200_with_details_only_when_ready(server, probe):
    status, body = get(server, "/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "models": {"J1": "2026-08-31.1"}, "outbox": 0}

    probe.ready, probe.details = False, {"inputs": "drop folder cam1 gone"}
    status, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "inputs": "drop folder cam1 gone"}


def test_readyz_is_503_when_the_check_itself_fails(server, probe):
    probe.failure = RuntimeError("journal locked")
    status, body = get(server, "/readyz")

    assert status == 503
    assert "journal locked" in json.loads(body)["error"]


def test_unknown_paths_are_404(server):
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/extra")[0] == 404


def test_metrics_expose_every_family_without_part_or_file_labels(server, telemetry):
    telemetry.observe_board(
        "NOK",
        [("J1", "OK"), ("J2", "NOK")],
        {"decode": 0.009, "align": 0.004, "infer": 0.021, "total": 0.038},
    )
    telemetry.set_model("J1", "2026-08-31.1", "c0de")
    telemetry.set_model("J1", "2026-09-01.1", "beef")
    telemetry.set_outbox_depth(3)
    telemetry.input_error("decode")
    telemetry.set_mqtt(True)
    telemetry.retention_removed("processed", 2, 2000)
    telemetry.set_retained_bytes("processed", 5000)
    telemetry.set_journal_inspections(7)

    status, body = get(server, "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}

    assert status == 200
    assert {
        "edge_inspect_verdicts",
        "edge_inspect_boards",
        "edge_inspect_stage_seconds",
        "edge_inspect_outbox_depth",
        "edge_inspect_model_info",
        "edge_inspect_input_errors",
        "edge_inspect_mqtt_connected",
        "edge_inspect_retention_removed",
        "edge_inspect_retention_freed_bytes",
        "edge_inspect_retained_bytes",
        "edge_inspect_journal_inspections",
    } <= set(families)
    labels = {name for f in families.values() for s in f.samples for name in s.labels}
    assert labels <= ALLOWED_LABELS
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("edge_inspect_boards_total", (("evaluation", "NOK"),))] == 1
    assert samples[("edge_inspect_boards_total", (("evaluation", "OK"),))] == 0
    assert (
        samples[("edge_inspect_verdicts_total", (("connector", "J2"), ("evaluation", "NOK")))] == 1
    )
    assert samples[("edge_inspect_outbox_depth", ())] == 3
    assert samples[("edge_inspect_mqtt_connected", ())] == 1
    assert samples[("edge_inspect_retention_removed_total", (("kind", "processed"),))] == 2
    assert samples[("edge_inspect_retention_removed_total", (("kind", "failed"),))] == 0
    assert samples[("edge_inspect_retained_bytes", (("kind", "processed"),))] == 5000
    models = [s.labels for s in families["edge_inspect_model_info"].samples]
    assert models == [{"connector": "J1", "version": "2026-09-01.1", "sha256": "beef"}]


def test_input_error_refuses_a_file_name_as_reason(telemetry):
    with pytest.raises(ValueError, match="short code"):
        telemetry.input_error("SN000123.png")


def write_config(tmp_path, port: int) -> str:
    path = tmp_path / "config.toml"
    path.write_text(f'[health]\nhost = "127.0.0.1"\nport = {port}\n')
    return str(path)


def test_health_command_exits_0_when_ready_and_1_when_not(server, probe, tmp_path, capsys):
    config = write_config(tmp_path, server.port)

    assert main(["health", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out)["ready"] is True

    probe.ready = False
    assert main(["health", "--config", config]) == 1
    assert json.loads(capsys.readouterr().out)["ready"] is False


def test_health_command_reports_a_closed_port(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    assert main(["health", "--config", write_config(tmp_path, port), "--timeout", "2"]) == 1
    assert f"no agent answering at http://127.0.0.1:{port}/readyz" in capsys.readouterr().err


def test_health_command_exits_2_on_a_bad_config(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text("[health]\nprot = 1\n")

    assert main(["health", "--config", str(path)]) == 2
    assert "unknown key 'health.prot'" in capsys.readouterr().err
