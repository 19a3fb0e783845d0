"""A model bundle that does not fit its connector, activated under a real agent process: it is
refused with one log line, readiness names the connector and the bundle, boards keep getting
verdicts, and the agent is ready again once a fitting bundle is active (no restart)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from mqtt_broker import MosquittoBroker, wait_until
from onnx_fixtures import install_template_model
from readiness_station import PREFIX, write_station
from test_readiness_agent import readyz, wait_for_reason

from edge_agent.contracts.bundle import ACTIVE_LINK
from trainer.demo.station_run import AgentProcess, VerdictListener, drop_board

pytestmark = pytest.mark.slow


@pytest.fixture
def station(tmp_path: Path) -> Path:
    return write_station(tmp_path / "site")


@pytest.fixture
def agent(tmp_path: Path, station: Path, broker: MosquittoBroker) -> Iterator[AgentProcess]:
    process = AgentProcess(station, broker.port, tmp_path / "agent.log").start()
    wait_until(lambda: (readyz(process) or (0,))[0] == 200, 60, "a ready agent")
    yield process
    process.stop()


def boards_get_verdicts(station: Path, listener: VerdictListener, count: int = 10) -> list[dict]:
    """Drop `count` boards (the reference photo) and wait for a verdict on each."""
    before = len(listener.verdicts)
    reference = station.parent / "reference.png"
    for n in range(count):
        drop_board(reference, station.parent / "drop" / "cam1", f"board-{before + n}.png")
    assert listener.wait_for(before + count, 60), f"{len(listener.verdicts) - before} verdicts"
    return [verdict for _, verdict in listener.verdicts[before:]]


def log_events(agent: AgentProcess, event: str) -> list[dict]:
    records = []
    for line in agent.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            records.append(record)
    return records


def test_a_bundle_of_another_crop_size_is_refused_and_named_in_readiness(
    station: Path, broker: MosquittoBroker, agent: AgentProcess
) -> None:
    models = station.parent / "models"
    listener = VerdictListener(broker.port, PREFIX)
    try:
        before = boards_get_verdicts(station, listener)
        assert {row["id"]: row["evaluation"] for row in before[-1]["connectors"]} == {
            "J1": "OK",
            "J2": "OK",
        }
        # A bundle cut for another box (50x30 where J2's box cuts 60x40), activated for J2.
        reference = cv2.imread(str(station.parent / "reference.png"))
        other = reference[0:30, 0:50].astype(np.float32)
        misfit = install_template_model(models, "J2", "2026-01-02.1", other, 16, 1e4)
        active = models / "J2" / ACTIVE_LINK

        wait_until(lambda: log_events(agent, "model_refused"), 30, "the misfit refused")
        (refused,) = log_events(agent, "model_refused")
        assert refused["path"] == str(misfit) and "does not fit its connector" in refused["error"]
        assert "keeps inspecting" in model_notices(agent)["J2"]  # shown, the old model runs
        during = boards_get_verdicts(station, listener)
        assert all(v["connectors"] for v in during)
        assert len(log_events(agent, "model_refused")) == 1
        assert "Traceback" not in agent.log_path.read_text(encoding="utf-8", errors="replace")

        active.unlink()  # the fitting version active again: used without a restart
        active.symlink_to("2026-01-01.1")
        after = boards_get_verdicts(station, listener)
        assert {row["id"]: row["evaluation"] for row in after[-1]["connectors"]} == {
            "J1": "OK",
            "J2": "OK",
        }
    finally:
        listener.close()


def test_an_agent_started_on_a_misfit_bundle_reports_model_mismatch(
    tmp_path: Path, station: Path, broker: MosquittoBroker, recorder
) -> None:
    models = station.parent / "models"
    reference = cv2.imread(str(station.parent / "reference.png"))
    other = reference[0:30, 0:50].astype(np.float32)
    # an older misfit lying beside the fitting version, never to be offered as a rollback
    install_template_model(models, "J2", "2025-12-31.1", other, 16, 1e4, make_active=False)
    misfit = install_template_model(models, "J2", "2026-01-02.1", other, 16, 1e4)
    announced = recorder(f"{PREFIX}/model/J2")
    agent = AgentProcess(station, broker.port, tmp_path / "agent.log").start()
    listener = VerdictListener(broker.port, PREFIX)
    try:
        reason = wait_for_reason(agent, "model_mismatch")
        assert str(misfit) in reason["reason"] and "60x40" in reason["reason"]
        assert len(log_events(agent, "model_refused")) == 1
        during = boards_get_verdicts(station, listener)
        assert {row["id"]: row["evaluation"] for row in during[-1]["connectors"]}["J1"] == "OK"
        assert "Traceback" not in agent.log_path.read_text(encoding="utf-8", errors="replace")

        (models / "J2" / ACTIVE_LINK).unlink()
        (models / "J2" / ACTIVE_LINK).symlink_to("2026-01-01.1")
        wait_until(lambda: readyz(agent)[0] == 200, 30, "ready once J2's model fits")
        (message,) = announced.wait_for(lambda ms: len(ms) >= 1, timeout=30)[-1:]
        assert message.json()["version"] == "2026-01-01.1"
        assert message.json()["rollback_to"] is None  # not the misfit 2025-12-31.1
        after = boards_get_verdicts(station, listener)
        assert {row["id"]: row["evaluation"] for row in after[-1]["connectors"]} == {
            "J1": "OK",
            "J2": "OK",
        }
    finally:
        listener.close()
        agent.stop()


def model_notices(agent: AgentProcess) -> dict[str, str]:
    answer = readyz(agent)
    return answer[1].get("model_notices", {}) if answer else {}


def test_a_model_changed_or_unlinked_under_the_agent_is_noticed_while_it_keeps_inspecting(
    station: Path, agent: AgentProcess, broker: MosquittoBroker
) -> None:
    listener = VerdictListener(broker.port, PREFIX)
    models = station.parent / "models"
    try:
        bundle = (models / "J1" / ACTIVE_LINK).resolve()
        model_file = next(p for p in bundle.iterdir() if p.suffix == ".onnx")
        original, stamp = model_file.read_bytes(), model_file.stat()
        model_file.write_bytes(original + b"\0")  # replaced in place
        wait_until(lambda: "J1" in model_notices(agent), 30, "the change noticed")
        assert "changed on disk after it was verified" in model_notices(agent)["J1"]
        assert readyz(agent)[0] == 200  # the verified model in memory still inspects
        rows = boards_get_verdicts(station, listener)[-1]["connectors"]
        assert {row["id"]: row["evaluation"] for row in rows} == {"J1": "OK", "J2": "OK"}

        model_file.write_bytes(original)
        os.utime(model_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        wait_until(lambda: not model_notices(agent), 30, "the notice cleared")

        link = models / "J2" / ACTIVE_LINK
        target = os.readlink(link)
        link.unlink()  # the active link removed
        wait_until(lambda: "J2" in model_notices(agent), 30, "the removed link noticed")
        assert "restart would find no model" in model_notices(agent)["J2"]
        rows = boards_get_verdicts(station, listener)[-1]["connectors"]
        assert {row["id"]: row["evaluation"] for row in rows} == {"J1": "OK", "J2": "OK"}
        link.symlink_to(target)
        wait_until(lambda: not model_notices(agent), 30, "the notice cleared")
        assert len(log_events(agent, "model_changed_on_disk")) == 2  # each logged once
    finally:
        listener.close()
