"""Model rollout in a running agent: shadow candidates, promote/rollback commands, confirmations."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, Received
from onnx_fixtures import install_template_model
from retrain_station import PREFIX, cli, publish, write_station

from edge_agent.contracts.bundle import active_dir
from edge_agent.feedback import lifecycle
from edge_agent.inspect.imaging import read_image_file
from edge_agent.store.crop_store import CropStore
from trainer.harness.station_run import AgentProcess, Board, drop_board, load_boards
from trainer.settings import load_config

CONNECTOR = "J3"
FIRST, SECOND = "2026-01-01.1", "2026-01-02.1"
MAP_SIZE = 16
LENIENT, STRICT = 1e4, 1e-3  # raw thresholds: every crop OK, every crop NOK
MODEL_TOPIC = f"{PREFIX}/model/{CONNECTOR}"
REPLIES = "mes/replies"


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small station whose J3 model is a template-distance graph (no training needed)."""
    config_path = write_station(
        tmp_path_factory.mktemp("built") / "station", (CONNECTOR,), boards=20, rollout="shadow"
    )
    install(config_path, FIRST, LENIENT, active=True)
    return config_path


def install(config_path: Path, version: str, raw_threshold: float, active: bool = False) -> None:
    config = load_config(config_path)
    x, y, w, h = config.connectors[CONNECTOR].box
    reference = read_image_file(config.station.reference_image)
    template = reference[y : y + h, x : x + w].astype(np.float32)
    install_template_model(
        config.paths.models,
        CONNECTOR,
        version,
        template,
        MAP_SIZE,
        raw_threshold,
        make_active=active,
    )


def payloads(messages: list[Received], topic: str) -> list[dict]:
    return [m.json() for m in messages if m.topic == topic and not m.dup]


def feed(site: Path, watch: MqttRecorder, board: Board) -> dict:
    """Drop a board and return its verdict."""
    drop_board(board.image, site.parent / "drop" / "cam1")
    messages = watch.wait_for(
        lambda ms: any(v["part_id"] == board.part_id for v in payloads(ms, f"{PREFIX}/verdict")),
        timeout=60,
    )
    return next(v for v in payloads(messages, f"{PREFIX}/verdict") if v["part_id"] == board.part_id)


def version_used(verdict: dict) -> str:
    return next(c for c in verdict["connectors"] if c["id"] == CONNECTOR)["model"]["version"]


def announced(watch: MqttRecorder, predicate) -> dict:
    messages = watch.wait_for(lambda ms: any(predicate(p) for p in payloads(ms, MODEL_TOPIC)))
    return [p for p in payloads(messages, MODEL_TOPIC) if predicate(p)][-1]


def test_shadow_candidate_is_scored_alongside_and_promoted_after_agreeing_boards(
    site: Path, recorder, agent: AgentProcess
) -> None:
    watch = recorder(f"{PREFIX}/#")
    boards = load_boards(site.parent, ("train",))
    install(site, SECOND, LENIENT)
    lifecycle.set_candidate(load_config(site).paths.models, CONNECTOR, SECOND, "test")
    announced(watch, lambda m: m["candidate"] == SECOND)

    used = [version_used(feed(site, watch, board)) for board in boards[:3]]

    shadow = payloads(
        watch.wait_for(lambda ms: len(payloads(ms, f"{PREFIX}/shadow/verdict")) >= 3),
        f"{PREFIX}/shadow/verdict",
    )
    assert used == [FIRST] * 3
    assert all(s["simulated"] is True for s in shadow)
    rows = [s["connectors"][0] for s in shadow]
    assert [r["model"]["version"] for r in rows] == [SECOND] * 3
    assert [r["agreeing_boards"] for r in rows] == [1, 2, 3] and all(r["agrees"] for r in rows)
    promoted = announced(watch, lambda m: m["version"] == SECOND)
    assert (
        promoted["last_event"]["event"] == "promoted" and promoted["last_event"]["by"] == "shadow"
    )
    assert promoted["candidate"] is None
    assert version_used(feed(site, watch, boards[3])) == SECOND
    assert len(payloads(watch.messages, f"{PREFIX}/shadow/verdict")) == 3


def test_candidate_that_disagrees_is_never_promoted(
    site: Path, recorder, agent: AgentProcess
) -> None:
    watch = recorder(f"{PREFIX}/#")
    install(site, SECOND, STRICT)
    models = load_config(site).paths.models
    lifecycle.set_candidate(models, CONNECTOR, SECOND, "test")
    announced(watch, lambda m: m["candidate"] == SECOND)

    verdicts = [feed(site, watch, board) for board in load_boards(site.parent, ("train",))[:4]]

    shadow = payloads(
        watch.wait_for(lambda ms: len(payloads(ms, f"{PREFIX}/shadow/verdict")) >= 4),
        f"{PREFIX}/shadow/verdict",
    )
    assert {v["evaluation"] for v in verdicts} == {"OK"}
    assert {s["evaluation"] for s in shadow} == {"NOK"}
    assert all(not s["connectors"][0]["agrees"] for s in shadow)
    assert active_dir(models, CONNECTOR).name == FIRST
    assert lifecycle.state(models, CONNECTOR).candidate == SECOND


def test_promote_and_rollback_commands_reply_and_the_agent_follows(
    site: Path, broker: MosquittoBroker, recorder, agent: AgentProcess
) -> None:
    watch = recorder(f"{PREFIX}/#")
    replies = recorder(REPLIES)
    boards = load_boards(site.parent, ("train",))
    install(site, SECOND, LENIENT)

    publish(
        broker,
        f"{PREFIX}/cmd/promote",
        {"connector": CONNECTOR, "version": SECOND},
        response_topic=REPLIES,
    )
    announced(watch, lambda m: m["version"] == SECOND)
    after_promote = version_used(feed(site, watch, boards[0]))
    publish(broker, f"{PREFIX}/cmd/rollback", {"connector": CONNECTOR}, response_topic=REPLIES)
    rolled = announced(watch, lambda m: (m["last_event"] or {}).get("event") == "rolled_back")
    after_rollback = version_used(feed(site, watch, boards[1]))
    publish(broker, f"{PREFIX}/cmd/rollback", {"connector": "J9"}, response_topic=REPLIES)

    answers = [m.json() for m in replies.wait_for(lambda ms: len(ms) >= 3)]
    assert [(a["command"], a["ok"]) for a in answers] == [
        ("promote", True),
        ("rollback", True),
        ("rollback", False),
    ]
    assert answers[0]["version"] == SECOND and answers[1]["version"] == FIRST
    assert "J9" in answers[2]["error"]
    assert (after_promote, after_rollback) == (SECOND, FIRST)
    assert rolled["version"] == FIRST and rolled["last_event"]["by"] == "mqtt"


def test_confirmations_from_the_mes_and_the_cli_are_journaled_with_who(
    site: Path, broker: MosquittoBroker, recorder, agent: AgentProcess
) -> None:
    watch = recorder(f"{PREFIX}/#")
    replies = recorder(REPLIES)
    board, other = load_boards(site.parent, ("train",))[:2]
    verdict = feed(site, watch, board)
    second = feed(site, watch, other)

    publish(
        broker,
        f"{PREFIX}/confirm",
        {"result_id": verdict["result_id"], "connector": CONNECTOR, "label": "KO", "by": "mes"},
        response_topic=REPLIES,
    )
    publish(
        broker,
        f"{PREFIX}/confirm",
        {"result_id": "nope", "label": "OK", "by": "mes"},
        response_topic=REPLIES,
    )
    answers = [m.json() for m in replies.wait_for(lambda ms: len(ms) >= 2)]
    by_cli = cli(
        "confirm",
        second["result_id"],
        "ok",
        "--config",
        str(site),
        "--by",
        "anna",
        port=broker.port,
    )
    unknown = cli("confirm", "nope", "OK", "--config", str(site), port=broker.port)

    assert answers[0] == {
        "ok": True,
        "result_id": verdict["result_id"],
        "connectors": [CONNECTOR],
        "label": "KO",
    }
    assert answers[1]["ok"] is False and "unknown result_id" in answers[1]["error"]
    assert by_cli.returncode == 0, by_cli.stderr
    assert unknown.returncode == 2 and "unknown result_id" in unknown.stderr
    state = load_config(site).paths.state
    with sqlite3.connect(state / "journal.sqlite") as db:
        rows = db.execute(
            "SELECT result_id, connector, label, confirmed_by FROM confirmations ORDER BY id"
        ).fetchall()
    assert rows == [
        (verdict["result_id"], CONNECTOR, "KO", "mes"),
        (second["result_id"], CONNECTOR, "OK", "cli:anna"),
    ]
    store = CropStore(state)
    kept = store.kept(verdict["result_id"])
    store.close()
    assert [(k.connector, k.evaluation, k.model_version) for k in kept] == [
        (CONNECTOR, "OK", FIRST)
    ]
    assert read_image_file(kept[0].path).shape[:2] == tuple(
        load_config(site).connectors[CONNECTOR].box[3:1:-1]
    )


def test_models_command_lists_versions_and_refuses_what_it_cannot_do(
    site: Path, broker: MosquittoBroker
) -> None:
    install(site, SECOND, LENIENT)

    listed = cli("models", "--config", str(site), "list", "--json", port=broker.port)
    no_candidate = cli("models", "--config", str(site), "promote", CONNECTOR, port=broker.port)
    promoted = cli("models", "--config", str(site), "promote", CONNECTOR, SECOND, port=broker.port)
    shown = cli("models", "--config", str(site), "show", CONNECTOR, port=broker.port)
    rolled = cli("models", "--config", str(site), "rollback", CONNECTOR, port=broker.port)
    again = cli("models", "--config", str(site), "rollback", CONNECTOR, port=broker.port)

    state = json.loads(listed.stdout)
    assert state[0]["active"] == FIRST and state[0]["versions"] == [FIRST, SECOND]
    assert no_candidate.returncode == 2 and "no candidate" in no_candidate.stderr
    assert promoted.returncode == 0 and f"{FIRST} -> {SECOND}" in promoted.stdout
    assert json.loads(shown.stdout)["version"] == SECOND
    assert json.loads(shown.stdout)["status"] == "active"
    assert rolled.returncode == 0 and f"{SECOND} -> {FIRST}" in rolled.stdout
    assert again.returncode == 2 and "no earlier version" in again.stderr
