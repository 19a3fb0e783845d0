"""Every input gets exactly one verdict; nothing acknowledged is lost; refusals are counted.

The agent runs in this process (no trained models: its verdicts are ERROR, which is enough to
count them) against a real mosquitto, a real journal file, real drop and inbox folders and real
watcher threads.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.comms.mqtt_link import MqttLink
from edge_agent.contracts.config import MqttSettings, StationConfig, load_config
from edge_agent.daemon import Agent
from edge_agent.inputs.spool import ImageSpool
from edge_agent.store.journal import Journal
from trainer.harness.station_run import drop_board

PREFIX = "plant/line9/aoi1"
VERDICT_TOPIC = f"{PREFIX}/verdict"
NO_MATCHING_SUBSCRIBERS = 16


def _board(path: Path, seed: int) -> Path:
    """A small textured PNG; each seed gives other bytes."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(path), image)
    return path


def _config(root: Path, broker: MosquittoBroker, **inputs: str) -> StationConfig:
    _board(root / "reference.png", 0)
    lines = [
        "[station]",
        'reference_image = "reference.png"',
        "[inputs]",
        'drop_folders = { cam1 = "drop/cam1" }',
        "settle_s = 0.05",
        *(f"{key} = {value}" for key, value in inputs.items()),
        "[mqtt]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        f'prefix = "{PREFIX}"',
        "stats_interval_s = 3600",
        "[scoring]",
        "workers = 2",
        "[health]",
        "enabled = false",
        "[retention]",
        "keep_crops = false",
        "[connectors.J1]",
        "box = [10, 10, 60, 40]",
    ]
    (root / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(root / "edge.toml")


@pytest.fixture
def start_agent(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(**inputs: str) -> Agent:
        agent = Agent(_config(tmp_path, broker, **inputs))
        agent.start()
        started.append(agent)
        assert agent.link is not None
        wait_until(lambda: agent.link.connected, 30, "the agent's broker connection")
        return agent

    yield start
    for agent in started:
        agent.stop()


def _verdicts(recorder: MqttRecorder) -> dict[str, dict]:
    return {m.json()["result_id"]: m.json() for m in recorder.on_topic(VERDICT_TOPIC)}


def _rows(agent: Agent) -> list[sqlite3.Row]:
    with sqlite3.connect(agent.journal.path) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM inspections ORDER BY session, seq").fetchall()


def _publish(broker: MosquittoBroker, camera: str, items: list[tuple[bytes, str]]) -> list[int]:
    """Publish images at QoS 1 (part id as a user property); the PUBACK reason codes."""
    reasons: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_publish = lambda c, u, mid, reason, props: reasons.append(reason.value)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for payload, part_id in items:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = [("part_id", part_id)]
            info = client.publish(f"{PREFIX}/image/{camera}", payload, qos=1, properties=properties)
            info.wait_for_publish(30)
        wait_until(lambda: len(reasons) == len(items), 30, "PUBACKs")
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons


def _refused(agent: Agent, reason: str) -> float:
    value = agent.telemetry.registry.get_sample_value(
        "edge_inspect_mqtt_refused_total", {"reason": reason}
    )
    return value or 0.0


@pytest.mark.slow
def test_a_mixed_stream_gets_one_row_and_one_verdict_per_input_repeats_naming_the_first(
    tmp_path: Path,
    broker: MosquittoBroker,
    recorder: Callable[..., MqttRecorder],
    start_agent: Callable[..., Agent],
) -> None:
    watch = recorder(VERDICT_TOPIC)
    agent = start_agent()
    drop = tmp_path / "drop" / "cam1"
    boards = tmp_path / "boards"
    boards.mkdir()
    new = [_board(boards / f"SN{n}.png", n) for n in (1, 2, 3)]
    for board in new:
        drop_board(board, drop)
    wait_until(lambda: len(_verdicts(watch)) == 3, 60, "the new boards' verdicts")
    first = {v["part_id"]: v["result_id"] for v in _verdicts(watch).values()}

    drop_board(new[0], drop, "SN1-reshot.png")  # the camera shoots board SN1 again
    twin = _board(boards / "twin.png", 9)
    copies = tmp_path / "copies"
    copies.mkdir()
    for name in ("SN9-a.png", "SN9-b.png"):
        shutil.copyfile(twin, copies / name)
    for name in ("SN9-a.png", "SN9-b.png"):  # two identical copies, renamed in at once
        os.rename(copies / name, drop / name)
    _publish(broker, "cam1", [(new[1].read_bytes(), "SN2-mqtt")])  # SN2 again, over MQTT

    wait_until(lambda: len(_verdicts(watch)) == 7, 60, "a verdict for every input")
    time.sleep(1.0)  # nothing more arrives
    verdicts = {v["part_id"]: v for v in _verdicts(watch).values()}
    rows = _rows(agent)

    assert len(verdicts) == len(rows) == 7
    assert {r["result_id"] for r in rows} == {v["result_id"] for v in verdicts.values()}
    assert sorted(verdicts) == ["SN1", "SN1-reshot", "SN2", "SN2-mqtt", "SN3", "SN9-a", "SN9-b"]
    assert verdicts["SN1-reshot"]["duplicate_of"] == first["SN1"]
    assert verdicts["SN2-mqtt"]["duplicate_of"] == first["SN2"]
    assert verdicts["SN2-mqtt"]["camera"] == "cam1"
    twins = [verdicts["SN9-a"], verdicts["SN9-b"]]
    originals = [v for v in twins if "duplicate_of" not in v]
    assert len(originals) == 1
    assert [v["duplicate_of"] for v in twins if v is not originals[0]] == [
        originals[0]["result_id"]
    ]
    assert not any("duplicate_of" in verdicts[p] for p in ("SN1", "SN2", "SN3"))
    assert all(v["evaluation"] != "OK" for v in verdicts.values())  # no model: never OK
    wait_until(lambda: not any(p.is_file() for p in drop.iterdir()), 30, "files filed away")
    assert not (drop / "duplicates").exists()


def test_a_fault_handling_one_input_gives_it_an_error_verdict_and_holds_up_nothing(
    tmp_path: Path,
    recorder: Callable[..., MqttRecorder],
    start_agent: Callable[..., Agent],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault that is not the storage's (here an inspector that raises on one board, as a
    bug would) must not stall the line behind that board the way a full disk does."""
    watch = recorder(VERDICT_TOPIC)
    agent = start_agent()
    inspect = agent.inspector.inspect

    def faulty(data: bytes, **source: str | None) -> object:
        if source["part_id"] == "SN1":
            raise RuntimeError("simulated fault")
        return inspect(data, **source)

    monkeypatch.setattr(agent.inspector, "inspect", faulty)
    drop = tmp_path / "drop" / "cam1"
    (tmp_path / "boards").mkdir()
    for n in (1, 2):
        drop_board(_board(tmp_path / "boards" / f"SN{n}.png", n), drop)

    wait_until(lambda: len(_verdicts(watch)) == 2, 60, "both boards' verdicts")
    verdicts = {v["part_id"]: v for v in _verdicts(watch).values()}
    assert verdicts["SN1"]["evaluation"] == "ERROR"
    assert "internal error" in verdicts["SN1"]["error"]["message"]
    assert "simulated fault" in verdicts["SN1"]["error"]["message"]
    assert "internal error" not in json.dumps(verdicts["SN2"])  # inspected as usual
    assert len(_rows(agent)) == 2
    assert len(agent.retry) == 0
    wait_until(lambda: list((drop / "failed").rglob("*SN1.png")), 30, "SN1 quarantined")


def _mount_tiny_tmpfs(folder: Path) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk needs a tmpfs mount: run as root with mount(8)")
    folder.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.mark.slow
def test_an_image_the_full_spool_cannot_take_is_redelivered_and_inspected_once_space_returns(
    tmp_path: Path,
    broker: MosquittoBroker,
    recorder: Callable[..., MqttRecorder],
    start_agent: Callable[..., Agent],
) -> None:
    inbox = tmp_path / "state" / "inbox"
    _mount_tiny_tmpfs(inbox)
    try:
        watch = recorder(VERDICT_TOPIC)
        agent = start_agent()
        filler = inbox / "filler"
        with filler.open("wb") as fh:  # fill the spool's filesystem to the last block
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        board = _board(tmp_path / "SN5.png", 5)

        _publish(broker, "cam1", [(board.read_bytes(), "SN5")])
        wait_until(lambda: _refused(agent, "spool_failed") >= 1, 30, "the counted refusal")
        time.sleep(1.5)
        assert not _verdicts(watch) and not _rows(agent)

        filler.unlink()  # space returns: the broker's redelivery is spooled and inspected

        wait_until(lambda: len(_verdicts(watch)) == 1, 60, "the redelivered image's verdict")
        time.sleep(1.0)
        assert [v["part_id"] for v in _verdicts(watch).values()] == ["SN5"]
        assert len(_rows(agent)) == 1
    finally:
        subprocess.run(["umount", "-l", str(inbox)], check=False)


def test_an_unwritable_inbox_leaves_the_image_unacknowledged_until_it_can_be_spooled(
    tmp_path: Path, broker: MosquittoBroker, recorder: Callable[..., MqttRecorder]
) -> None:
    status = recorder(f"{PREFIX}/status", persistent=False)
    refusals: list[str] = []
    inbox = tmp_path / "inbox"
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start_session()
    spool = ImageSpool(inbox, ["cam1"], refusals.append, journal.read_from_path_prefix)
    folder = spool.folders()["mqtt:cam1"]
    folder.rmdir()
    folder.write_bytes(b"")  # the inbox path is a file: every spool write fails
    link = _link(broker, journal, {"image/+": spool.on_message}, refusals.append)
    try:
        _publish(broker, "cam1", [(b"\x89PNG image", "SN1")])
        wait_until(lambda: "spool_failed" in refusals, 30, "the refusal")

        folder.unlink()
        folder.mkdir()

        wait_until(lambda: any(folder.iterdir()), 60, "the redelivered image in the spool")
        time.sleep(1.0)
        spooled = list(folder.iterdir())
        assert len(spooled) == 1 and spooled[0].name.startswith("SN1@")
        assert spooled[0].read_bytes() == b"\x89PNG image"
        states = [m.json()["state"] for m in status.messages]
        assert states.count("online") >= 2 and "offline" not in states  # reconnected quietly
    finally:
        link.stop(clean=False)
        journal.close()


def _link(
    broker: MosquittoBroker, journal: Journal, handlers: dict, refused: Callable[[str], None]
) -> MqttLink:
    link = MqttLink(
        MqttSettings(host=broker.host, port=broker.port, prefix=PREFIX),
        journal,
        node="aoi9",
        session=journal.session or 0,
        birth=dict,
        handlers=handlers,
        max_payload_bytes=100_000,
        refused=refused,
    )
    link.start()
    wait_until(lambda: link.connected, 30, "the link's connection")
    return link


@pytest.mark.slow
def test_two_hundred_unknown_cameras_add_no_thread_and_no_folder(
    tmp_path: Path,
    broker: MosquittoBroker,
    recorder: Callable[..., MqttRecorder],
    start_agent: Callable[..., Agent],
) -> None:
    watch = recorder(VERDICT_TOPIC)
    agent = start_agent(cameras='["cam2"]')
    inbox = tmp_path / "state" / "inbox"
    threads, folders = threading.active_count(), sorted(p.name for p in inbox.iterdir())
    image = _board(tmp_path / "SN1.png", 1).read_bytes()

    for n in range(200):
        _publish(broker, f"intruder{n}", [(image, f"X{n}")])
    wait_until(lambda: _refused(agent, "unknown_camera") == 200, 60, "200 refusals")
    after = threading.active_count()
    _publish(broker, "cam2", [(image, "SN1")])  # a declared camera still works
    wait_until(lambda: len(_verdicts(watch)) == 1, 60, "the declared camera's verdict")

    assert after == threads
    assert folders == ["cam1", "cam2"]
    assert sorted(p.name for p in inbox.iterdir()) == folders
    assert [v["camera"] for v in _verdicts(watch).values()] == ["cam2"]
    assert len(_rows(agent)) == 1


def test_mqtt_images_off_subscribes_to_no_image_topic_and_spools_nothing(
    tmp_path: Path, broker: MosquittoBroker, start_agent: Callable[..., Agent]
) -> None:
    agent = start_agent(mqtt_images="false")
    time.sleep(0.5)  # the subscriptions of on_connect are in place

    reasons = _publish(broker, "cam1", [(b"\x89PNG image", "SN1")])
    time.sleep(0.5)

    assert reasons == [NO_MATCHING_SUBSCRIBERS]
    assert not (tmp_path / "state" / "inbox").exists()
    assert not _rows(agent)
    assert [w.camera for w in agent._watchers] == ["cam1"]
