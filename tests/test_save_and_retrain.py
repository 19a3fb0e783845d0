""" "Save and retrain" without a line: the request leaves config.toml alone, a stale config.toml
at switch time and too few stored boards are refused with nothing switched."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx_fixtures import install_bundle, make_manifest

from edge_agent.console.layout_request import (
    cancel_request,
    describe,
    read_request,
    read_status,
    request_path,
    write_request,
)
from edge_agent.console.setup_backups import file_sha256, list_backups
from edge_agent.console.station_setup import BoxLayout, Layout, SetupError, StaleConfig
from edge_agent.contracts.bundle import active_dir
from edge_agent.contracts.config import load_config as load_station_config
from edge_agent.feedback.relayout import RelayoutRefused, parse_install, prepare
from edge_agent.inspect.scoring import ModelRegistry
from trainer.commands.trainer_service import layout_check
from trainer.retrain.layout import MIN_OK_BOARDS, LayoutFailed, run_request, switch
from trainer.settings import load_config

REFERENCE = (320, 240)
CONFIG = """[station]
name = "line7/aoi"
reference_image = "reference.png"

[paths]
models = "models"
state = "state"

[mqtt]
enabled = false

[training]
input_size = 64
input_size_max = 64

[connectors.J1]
box = [10, 20, 100, 50]

[connectors.J2]
box = [150, 20, 60, 40]
"""


@pytest.fixture
def station(tmp_path: Path) -> Path:
    """config.toml, a reference image, and active models for J1 (100x50) and J2 (60x40)."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    rng = np.random.default_rng(0)
    reference = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(tmp_path / "reference.png"), reference)
    install_bundle(tmp_path / "models", make_manifest("J1", "v1", 50, 100, 64, 1.0), b"graph")
    install_bundle(tmp_path / "models", make_manifest("J2", "v1", 40, 60, 64, 1.0), b"graph")
    return path


def resized(path: Path) -> Layout:
    """J1 grown by 10 px (its model no longer fits), J2 moved (it still does)."""
    return Layout(
        connectors=[
            BoxLayout(id="J1", box=(10, 20, 110, 50)),
            BoxLayout(id="J2", box=(160, 30, 60, 40)),
        ],
        base_sha256=file_sha256(path),
    )


def test_save_and_retrain_writes_a_request_and_leaves_config_untouched(station: Path) -> None:
    config = load_config(station)
    request = write_request(station, config, resized(station), REFERENCE, by="ana")

    assert station.read_text() == CONFIG and list_backups(station) == []
    on_disk = json.loads(request_path(config).read_text())
    assert on_disk == request
    assert on_disk["connectors"] == {"J1": {"model": [100, 50], "box": [110, 50]}}
    assert on_disk["base_sha256"] == file_sha256(station) and on_disk["by"] == "ana"
    assert [c["box"] for c in on_disk["layout"]["connectors"]] == [
        [10, 20, 110, 50],
        [160, 30, 60, 40],
    ]
    shown = describe(config)
    assert shown["pending"] and "J1 100x50 -> 110x50" in shown["text"]
    with pytest.raises(SetupError, match="already pending"):
        write_request(station, config, resized(station), REFERENCE, by="bo")

    assert cancel_request(config, "bo")["id"] == request["id"]
    assert read_request(config) is None and "cancelled by bo" in describe(config)["text"]
    assert station.read_text() == CONFIG


def test_a_request_is_refused_when_stale_or_when_no_model_input_changes(station: Path) -> None:
    config = load_config(station)
    stale = resized(station).model_copy(update={"base_sha256": "0" * 64})
    with pytest.raises(StaleConfig, match="changed since this page was loaded"):
        write_request(station, config, stale, REFERENCE, by="ana")
    moved = Layout(
        connectors=[
            BoxLayout(id="J1", box=(12, 20, 100, 50)),
            BoxLayout(id="J2", box=(150, 20, 60, 40)),
        ]
    )
    with pytest.raises(SetupError, match="save it without retraining"):
        write_request(station, config, moved, REFERENCE, by="ana")
    assert read_request(config) is None


def test_a_config_changed_since_the_request_is_refused_at_switch_time(station: Path) -> None:
    config = load_config(station)
    request = write_request(station, config, resized(station), REFERENCE, by="ana")
    edited = CONFIG.replace('name = "line7/aoi"', 'name = "line7/aoi-b"')
    station.write_text(edited)
    models = config.paths.models
    install_bundle(models, make_manifest("J1", "v2", 50, 110, 64, 1.0), b"graph", make_active=False)

    with pytest.raises(
        LayoutFailed, match="changed since the request was made: nothing was switched"
    ):
        switch(station, config, request, {"J1": "v2"})

    assert station.read_text() == edited and list_backups(station) == []
    assert active_dir(models, "J1").name == "v1"


def test_too_few_stored_boards_fail_the_request_and_change_nothing(station: Path) -> None:
    config = load_config(station)
    write_request(station, config, resized(station), REFERENCE, by="ana")

    status = run_request(station, config)

    assert status["state"] == "failed"
    assert f"0 stored boards with J1 OK, at least {MIN_OK_BOARDS} are needed" in status["message"]
    assert read_request(config) is None and read_status(config)["state"] == "failed"
    assert "Save and retrain failed" in describe(config)["text"]
    assert station.read_text() == CONFIG and list_backups(station) == []
    assert active_dir(config.paths.models, "J1").name == "v1"


def test_the_agent_takes_up_only_connector_changes_while_running(station: Path) -> None:
    running = load_station_config(station)
    registry = ModelRegistry(running.paths.models, ["J1", "J2"], 1)
    assert prepare(station, running, registry, {}, "t") is None  # nothing changed
    station.write_text(CONFIG.replace('name = "line7/aoi"', 'name = "line7/aoi-b"'))
    with pytest.raises(RelayoutRefused, match=r"sections \['station'\] changed .* restart it"):
        prepare(station, running, registry, {"J1": "v1"}, "t")
    assert active_dir(running.paths.models, "J1").name == "v1"
    with pytest.raises(ValueError, match="must map connector names to version names"):
        parse_install(b'{"install": {"J1": "../J2/v1"}}')
    assert parse_install(b'{"install": {"J1": "v2"}, "by": "x"}') == ({"J1": "v2"}, "x")


def test_the_trainer_service_runs_retrain_layout_when_a_request_is_pending(station: Path) -> None:
    config = load_config(station)
    started: list[str] = []

    class Runner:
        busy = False

        def layout(self) -> None:
            started.append("retrain-layout")

    check = layout_check(config, Runner())
    check()
    assert started == []
    write_request(station, config, resized(station), REFERENCE, by="ana")
    check()
    assert started == ["retrain-layout"]
