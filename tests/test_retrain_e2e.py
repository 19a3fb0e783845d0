"""Nightly retraining end to end: a real agent process, a real broker, real training and gating."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, Received, wait_until
from retrain_station import (
    PREFIX,
    build_station,
    cli,
    cli_process,
    confirmed_crops,
    publish,
    station_crops,
)

from edge_agent.contracts.bundle import active_dir, list_versions
from edge_agent.feedback.lifecycle import REASON_FILE
from edge_agent.store.crop_store import CropStore
from trainer.harness.station_run import AgentProcess, Board, drop_board, load_boards
from trainer.settings import load_config

pytestmark = pytest.mark.slow

CONNECTOR = "J3"
MODEL_TOPIC = f"{PREFIX}/model/{CONNECTOR}"
STATUS_TOPIC = f"{PREFIX}/trainer/status"


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated station with its first J3 model (built once for this module)."""
    return build_station(tmp_path_factory.mktemp("built") / "station", (CONNECTOR,))


class Line:
    """Feeds boards into the agent's drop folder and reads their verdicts from the broker."""

    def __init__(self, site: Path, recorder: MqttRecorder) -> None:
        self.drop = site.parent / "drop" / "cam1"
        self.recorder = recorder
        self.fed: list[str] = []

    def feed(self, board: Board) -> dict:
        """Drop one board and wait for its verdict."""
        drop_board(board.image, self.drop)
        self.fed.append(board.part_id)
        messages = self.recorder.wait_for(
            lambda ms: any(v.get("part_id") == board.part_id for v in verdicts(ms)), timeout=60
        )
        return next(v for v in verdicts(messages) if v.get("part_id") == board.part_id)

    def version(self, board: Board) -> str:
        """The J3 model version the agent used for this board."""
        row = next(c for c in self.feed(board)["connectors"] if c["id"] == CONNECTOR)
        return row["model"]["version"]


def verdicts(messages: list[Received]) -> list[dict]:
    """Each verdict once (the MES de-duplicates on result_id)."""
    unique = {}
    for m in messages:
        if m.topic == f"{PREFIX}/verdict":
            unique.setdefault(m.json()["result_id"], m.json())
    return list(unique.values())


def last_on(recorder: MqttRecorder, topic: str, predicate, timeout: float = 60) -> dict:
    """Wait for a message on `topic` whose payload satisfies `predicate`; return the latest one."""
    messages = recorder.wait_for(
        lambda ms: any(m.topic == topic and predicate(m.json()) for m in ms), timeout=timeout
    )
    return [m.json() for m in messages if m.topic == topic and predicate(m.json())][-1]


def event_of(announcement: dict) -> str | None:
    """The lifecycle event a `model/<connector>` message announces."""
    return (announcement.get("last_event") or {}).get("event")


def confirmations(site: Path) -> int:
    state = load_config(site).paths.state
    with sqlite3.connect(state / "journal.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM confirmations").fetchone()[0]


def test_confirmed_boards_retrain_a_model_the_running_agent_uses_and_rollback_restores(
    site: Path, broker: MosquittoBroker, recorder, agent: AgentProcess
) -> None:
    watch = recorder(f"{PREFIX}/#")
    line = Line(site, watch)
    models = load_config(site).paths.models
    first = active_dir(models, CONNECTOR).name
    boards = {split: load_boards(site.parent, (split,)) for split in ("train", "val", "test")}

    for board in boards["test"]:
        verdict = line.feed(board)
        label = board.labels[CONNECTOR]
        publish(
            broker,
            f"{PREFIX}/confirm",
            {
                "result_id": verdict["result_id"],
                "connector": CONNECTOR,
                "label": label,
                "by": "mes",
            },
        )
    wait_until(lambda: confirmations(site) == len(boards["test"]), what="confirmations journaled")

    retrain = cli_process(
        "retrain", "--now", "--config", str(site), port=broker.port, log=site.parent / "retrain.log"
    )
    during = iter(boards["train"])
    while retrain.poll() is None:
        line.feed(next(during))
        time.sleep(0.5)
    assert retrain.returncode == 0, (site.parent / "retrain.log").read_text()[-3000:]

    status = last_on(watch, STATUS_TOPIC, lambda s: s["state"] == "idle")
    result = status["connectors"][CONNECTOR]
    assert result["outcome"] == "installed", result
    second = result["version"]
    assert second != first and result["counts"]["confirmed_ok"] > 0
    assert result["gate"]["accepted"] and not result["gate"]["candidate"]["missed_ko"]
    announced = last_on(watch, MODEL_TOPIC, lambda m: m["version"] == second)
    assert event_of(announced) == "installed" and announced["rollback_to"] == first
    assert [line.version(board) for board in boards["val"][:2]] == [second, second]

    rolled = cli("models", "--config", str(site), "rollback", CONNECTOR, port=broker.port)
    assert rolled.returncode == 0, rolled.stderr
    announced = last_on(watch, MODEL_TOPIC, lambda m: event_of(m) == "rolled_back")
    assert announced["version"] == first and announced["rollback_to"] is None
    assert [line.version(board) for board in boards["val"][2:4]] == [first, first]

    assert agent.process.poll() is None, "the agent was never restarted"
    fed = sorted(line.fed)
    assert sorted(v["part_id"] for v in verdicts(watch.messages)) == fed
    assert len(fed) == len(set(fed)) > len(boards["test"]) + 4


def test_candidate_trained_on_mislabelled_ko_is_refused_and_the_active_model_stays(
    site: Path, broker: MosquittoBroker, recorder, agent: AgentProcess
) -> None:
    watch = recorder(f"{PREFIX}/#")
    config = load_config(site)
    first = active_dir(config.paths.models, CONNECTOR).name
    library_ko = station_crops(site.parent, CONNECTOR, "val/ko")[0]
    noise = np.random.default_rng(0)
    recurring = [
        np.clip(library_ko + noise.integers(-3, 4, library_ko.shape), 0, 255).astype(np.uint8)
        for _ in range(3)
    ]
    mislabelled = station_crops(site.parent, CONNECTOR, "test/ko") + recurring
    confirmed_crops(config.paths.state, CONNECTOR, [(crop, "OK") for crop in mislabelled])

    run = cli("retrain", "--now", "--config", str(site), port=broker.port)
    assert run.returncode == 0, run.stderr[-3000:]

    result = last_on(watch, STATUS_TOPIC, lambda s: s["state"] == "idle")["connectors"][CONNECTOR]
    assert result["outcome"] == "refused" and not result["gate"]["accepted"]
    refused = result["version"]
    assert active_dir(config.paths.models, CONNECTOR).name == first
    assert list_versions(config.paths.models, CONNECTOR) == [first]
    reason = (config.paths.models / CONNECTOR / "rejected" / refused / REASON_FILE).read_text()
    assert "worse than the active" in reason or "misses" in reason
    announced = last_on(watch, MODEL_TOPIC, lambda m: event_of(m) == "refused")
    assert announced["version"] == first and announced["last_event"]["version"] == refused
    shown = cli("models", "--config", str(site), "show", CONNECTOR, refused, port=broker.port)
    assert shown.returncode == 0 and '"status": "refused"' in shown.stdout


def test_trainer_killed_mid_run_leaves_no_partial_bundle_and_a_corrupt_crop_is_skipped(
    site: Path, broker: MosquittoBroker, recorder, agent: AgentProcess
) -> None:
    watch = recorder(f"{PREFIX}/#")
    line = Line(site, watch)
    config = load_config(site)
    models = config.paths.models
    first = active_dir(models, CONNECTOR).name
    good = station_crops(site.parent, CONNECTOR, "test/ok")
    result_ids = confirmed_crops(config.paths.state, CONNECTOR, [(c, "OK") for c in good])
    store = CropStore(config.paths.state)
    corrupt = store.kept(result_ids[0])[0].path
    store.close()
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    boards = iter(load_boards(site.parent, ("train",)))

    retrain = cli_process(
        "retrain", "--now", "--config", str(site), port=broker.port, log=site.parent / "killed.log"
    )
    staged = models / ".retrain" / CONNECTOR
    wait_until(
        lambda: any(staged.glob(".staging-*")) or retrain.poll() is not None,
        timeout=180,
        what="the trainer to stage a bundle",
    )
    assert retrain.poll() is None, "the run ended before it could be killed"
    retrain.send_signal(signal.SIGKILL)
    retrain.wait()

    assert list_versions(models, CONNECTOR) == [first]
    assert not list((models / CONNECTOR).glob(".staging-*"))
    assert active_dir(models, CONNECTOR).name == first
    assert agent.process.poll() is None
    assert [line.version(next(boards)) for _ in range(2)] == [first, first]

    rerun = cli("retrain", "--now", "--config", str(site), port=broker.port)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = last_on(watch, STATUS_TOPIC, lambda s: s["state"] == "idle")["connectors"][CONNECTOR]
    assert result["outcome"] == "installed"
    assert not (models / ".retrain").exists()
    skipped = result["skipped_crops"]
    assert [s["origin"] for s in skipped] == [f"confirmed/{result_ids[0]}"]
    assert "unreadable" in skipped[0]["reason"]
    assert result["counts"]["confirmed_ok"] == len(good) - 1
    assert line.version(next(boards)) == result["version"]
