"""Saving the station set-up: config.toml edited in place, checked, atomic, previous file kept."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from edge_agent.console.station_setup import (
    BoxLayout,
    Layout,
    SetupError,
    current_layout,
    roi_from_model,
    roi_to_model,
    save_layout,
)
from edge_agent.contracts.config import load_config

REFERENCE = (640, 480)
CONFIG = """# station 7, set up by hand
[station]
name = "line7/aoi"

[training]
input_size = 64
input_size_max = 64

[connectors.J1]
box = [10, 20, 100, 50]  # the USB socket

[connectors.J2]
box = [300, 200, 80, 80]
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def save(config_path: Path, *connectors: BoxLayout):
    return save_layout(
        config_path, load_config(config_path), Layout(connectors=list(connectors)), REFERENCE
    )


def test_save_moves_adds_disables_and_keeps_the_previous_file(config_path: Path) -> None:
    saved = save(
        config_path,
        BoxLayout(id="J1", box=(12, 22, 100, 50), roi=(50, 0, 50, 25)),
        BoxLayout(id="J2", box=(300, 200, 80, 80), enabled=False),
        BoxLayout(id="J9", box=(500, 400, 40, 40)),
    )

    text = config_path.read_text()
    data = tomllib.loads(text)
    assert data["connectors"]["J1"]["box"] == [12, 22, 100, 50]
    assert data["connectors"]["J2"]["enabled"] is False
    assert data["connectors"]["J9"]["box"] == [500, 400, 40, 40]
    assert data["training"]["roi_file"] == "rois.json"
    assert "# station 7, set up by hand" in text and "# the USB socket" in text
    assert saved.backup.read_text() == CONFIG
    assert json.loads(saved.roi_file.read_text()) == {"J1": [0, 32, 32, 64]}
    config = load_config(config_path)
    assert config.connectors["J9"].box == (500, 400, 40, 40)
    assert current_layout(config, config_path)[0]["roi"] == [50, 0, 50, 25]
    assert not list(config_path.parent.glob(".*.tmp"))


def test_a_renamed_connector_replaces_the_old_name(config_path: Path) -> None:
    save(config_path, BoxLayout(id="USB1", box=(10, 20, 100, 50)))

    assert list(tomllib.loads(config_path.read_text())["connectors"]) == ["USB1"]


@pytest.mark.parametrize(
    ("connector", "message"),
    [
        (BoxLayout(id="J1", box=(600, 20, 100, 50)), "inside the 640x480 reference image"),
        (BoxLayout(id="J1", box=(10, 20, 4, 50)), "at least 8x8"),
        (BoxLayout(id="J1", box=(10, 20, 100, 50), roi=(90, 0, 20, 10)), "inside its 100x50 crop"),
    ],
)
def test_an_impossible_layout_is_refused_and_nothing_is_written(
    config_path: Path, connector: BoxLayout, message: str
) -> None:
    with pytest.raises(SetupError, match=message):
        save(config_path, connector)

    assert config_path.read_text() == CONFIG
    assert not config_path.with_name("config-backups").exists()
    assert not config_path.with_name("rois.json").exists()


def test_the_agents_schema_checks_the_file_that_would_be_written(config_path: Path) -> None:
    loaded = load_config(config_path)
    edited_meanwhile = CONFIG + "\n[scoring]\nworkerz = 2\n"
    config_path.write_text(edited_meanwhile)
    layout = Layout(connectors=[BoxLayout(id="J1", box=(10, 20, 100, 50))])

    with pytest.raises(SetupError, match=r"config\.toml: unknown key 'scoring\.workerz'"):
        save_layout(config_path, loaded, layout, REFERENCE)

    assert config_path.read_text() == edited_meanwhile
    assert not list(config_path.parent.glob(".*.tmp"))


def test_rois_convert_between_crop_and_model_input_pixels() -> None:
    box = (0, 0, 200, 100)

    model = roi_to_model((20, 10, 100, 50), box, 128)

    assert model == [12, 77, 12, 77]
    assert roi_from_model(model, box, 128) == [19, 9, 101, 51]
