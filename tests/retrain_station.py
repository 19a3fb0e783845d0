"""A small generated station with a trained first model, for the retraining end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from mqtt_broker import MosquittoBroker
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.contracts.bundle import MANIFEST_FILE, active_dir, publish_bundle, read_manifest
from edge_agent.contracts.verdict import new_result_id
from edge_agent.inspect.imaging import read_image_file
from edge_agent.store.crop_store import JOURNAL_FILE, CropStore
from edge_agent.store.journal import Journal
from trainer.settings import load_config
from trainer.synth.station import generate_station
from trainer.train_connector import train_connector

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "synth/aoi1"
BOARDS = 80
TRAINING = {"input_size": 64, "input_size_max": 64, "coreset_max": 300}


def build_station(
    out: Path, connectors: tuple[str, ...], boards: int = BOARDS, training: dict | None = None
) -> Path:
    """Generate the station, write `edge.toml` for `connectors` and train their first models."""
    config_path = write_station(out, connectors, boards, training=training)
    config = load_config(config_path)
    for cid in connectors:
        train_connector(out / "crops" / cid, config.paths.models, config.training)
    return config_path


def write_station(
    out: Path,
    connectors: tuple[str, ...],
    boards: int,
    rollout: str = "auto",
    training: dict | None = None,
) -> Path:
    """Generate the station and write its `edge.toml` for `connectors`; no models yet."""
    generate_station(out, seed=0, boards=boards, progress=False, workers=1)
    boxes = tomllib.loads((out / "config.toml").read_text())["connectors"]
    lines = [
        "[station]",
        'name = "synth/aoi1"',
        'reference_image = "boards/reference.png"',
        "[registration]",
        "max_features = 1000",
        "[inputs]",
        'drop_folders = { cam1 = "drop/cam1" }',
        'cameras = ["cam2"]',
        "[paths]",
        'models = "models"',
        'state = "state"',
        "[mqtt]",
        f'prefix = "{PREFIX}"',
        "stats_interval_s = 3600",
        "[scoring]",
        "workers = 1",
        "[training]",
        *(f"{key} = {value}" for key, value in (training or TRAINING).items()),
        "[retrain]",
        'seed_data = "crops"',
        "max_train = 60",
        f'rollout = "{rollout}"',
        "shadow_boards = 3",
        "nice = 0",
        *(f"[connectors.{cid}]\nbox = {list(boxes[cid]['box'])}" for cid in connectors),
    ]
    (out / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "edge.toml"


def copy_station(source: Path, target: Path) -> Path:
    """A private copy of a built station (config, boards, crops, models), for one test."""
    shutil.copytree(source.parent, target, symlinks=True)
    return target / source.name


def cli(*args: str, port: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `edge-inspect ARGS` as a separate process pointed at the test broker."""
    env = {**os.environ, "EDGE_INSPECT_MQTT__PORT": str(port), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_process(*args: str, port: int, log: Path) -> subprocess.Popen:
    """Start `edge-inspect ARGS` in the background, output into `log`."""
    env = {**os.environ, "EDGE_INSPECT_MQTT__PORT": str(port), "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", *args], env=env, stdout=handle, stderr=handle
        )


def publish(broker: MosquittoBroker, topic: str, payload: dict, **properties: str) -> None:
    """One QoS 1 message from a separate client (as the MES would send it)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        options = Properties(PacketTypes.PUBLISH)
        if "response_topic" in properties:
            options.ResponseTopic = properties["response_topic"]
        client.publish(topic, json.dumps(payload), qos=1, properties=options).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def clone_version(models: Path, connector: str, version: str) -> str:
    """Install a copy of the active bundle as another version (the same model, a new name)."""
    source = active_dir(models, connector)
    assert source is not None
    staging = models / connector / f".staging-clone-{version}"
    shutil.copytree(source, staging)
    manifest = read_manifest(staging).model_copy(update={"version": version})
    (staging / MANIFEST_FILE).write_text(manifest.dump(), encoding="utf-8")
    publish_bundle(staging, models, connector, version)
    return version


def confirmed_crops(state: Path, connector: str, crops: list[tuple[np.ndarray, str]]) -> list[str]:
    """Journal one inspection per crop, keep the crop as the agent does and confirm its label."""
    journal = Journal(state / JOURNAL_FILE)
    journal.start_session()
    store = CropStore(state)
    result_ids = []
    try:
        for crop, label in crops:
            result_id = new_result_id()
            row = {"id": connector, "evaluation": "OK", "score": 0.5, "model": {"version": "x"}}
            verdict = {"result_id": result_id, "evaluation": "OK", "connectors": [row]}
            journal.record_inspection(verdict, [], f"{PREFIX}/verdict")
            store.keep(verdict, {connector: crop})
            journal.record_confirmation(result_id, connector, label, "mes")
            result_ids.append(result_id)
    finally:
        store.close()
        journal.close()
    return result_ids


def station_crops(station: Path, connector: str, folder: str) -> list[np.ndarray]:
    """The generator's crops of one connector folder (e.g. "test/ko"), in name order."""
    folder_path = station / "crops" / connector / folder
    return [read_image_file(path) for path in sorted(folder_path.glob("*.png"))]
