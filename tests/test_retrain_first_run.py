"""The first retrain of a station made by `synth` + `train-all` continues from what the
installed models learned: every bundle carries its training and held-out sets, with copies of
the crops, and the station config names the seed data."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.contracts.bundle import active_dir, connector_dir
from edge_agent.inspect.imaging import read_image_file
from trainer.datasets import list_images
from trainer.retrain.dataset import CROPS_DIR, SET_FILE, pixel_name
from trainer.settings import load_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BOARDS = 40
FAST = {"input_size": 64, "input_size_max": 64, "coreset_max": 300}


def closed_port() -> int:
    """A loopback port nothing listens on: the trainer's announcements fail, the job goes on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def names(folder: Path) -> set[str]:
    return {pixel_name(read_image_file(path)) for path in list_images(folder)}


def test_first_retrain_of_a_synth_and_train_all_station_keeps_the_original_crops(
    tmp_path: Path,
) -> None:
    station = tmp_path / "station"
    assert main(["synth", "--out", str(station), "--boards", str(BOARDS), "--workers", "1"]) == 0
    config_path = station / "config.toml"
    config = load_config(config_path)
    assert config.retrain.seed_data == station / "crops"
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in FAST.items()]
    train_all = ["train-all", "--data", str(station / "crops"), "--out", str(config.paths.models)]
    assert main([*train_all, "--config", str(config_path), *flags]) == 0

    connectors = config.enabled_connectors()
    original = {}
    for cid in connectors:
        crops = station / "crops" / cid
        original[cid] = names(crops / "train" / "ok")
        bundle = active_dir(config.paths.models, cid)
        record = json.loads((bundle / SET_FILE).read_text())
        assert set(record["train"]) == original[cid]
        assert set(record["calibration_ok"]) == names(crops / "val" / "ok")
        assert set(record["ko"]) == names(crops / "val" / "ko")
        copied = {p.name for p in (bundle / CROPS_DIR).iterdir()}
        assert copied == {*record["train"], *record["calibration_ok"], *record["ko"]}
        # The folders a model learned from may be gone by the time it is retrained.
        shutil.rmtree(crops / "train")

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EDGE_INSPECT_MQTT__PORT": str(closed_port()),
        **{f"EDGE_INSPECT_TRAINING__{key.upper()}": str(value) for key, value in FAST.items()},
    }
    retrain = ["retrain", "--now", "--force", "--config", str(config_path)]
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *retrain],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]

    status = json.loads((config.paths.state / "retrain" / "status.json").read_text())
    for cid in connectors:
        outcome = status["connectors"][cid]
        assert outcome["outcome"] in ("installed", "candidate", "refused"), outcome
        version = outcome["version"]
        folder = connector_dir(config.paths.models, cid)
        bundle = folder / version if (folder / version).is_dir() else folder / "rejected" / version
        record = json.loads((bundle / SET_FILE).read_text())
        assert set(record["train"]) == original[cid], cid
        assert not (bundle / CROPS_DIR).exists()  # the trainer's library holds them now
        library = config.paths.state / "retrain" / cid / "library"
        assert original[cid] <= {p.name for p in library.iterdir()}
