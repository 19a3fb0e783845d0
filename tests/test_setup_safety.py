"""A set-up save that cannot break the line: model inputs kept, stale pages refused, backups."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from onnx_fixtures import install_bundle, make_manifest

from edge_agent.console.setup_backups import KEPT_BACKUPS, file_sha256, list_backups
from edge_agent.console.station_setup import (
    BoxLayout,
    Layout,
    SetupError,
    StaleConfig,
    restore_backup,
    save_layout,
)
from edge_agent.contracts.config import load_config

REFERENCE = (640, 480)
CONFIG = """[station]
name = "line7/aoi"

[training]
input_size = 64
input_size_max = 64

[connectors.J1]
box = [10, 20, 100, 50]
"""


@pytest.fixture
def station(tmp_path: Path) -> tuple[Path, Path]:
    """config.toml and a models folder where J1's active model takes 100x50 crops."""
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    models = tmp_path / "models"
    install_bundle(models, make_manifest("J1", "v1", 50, 100, 64, 1.0), b"graph")
    return path, models


def save(path: Path, models: Path, *connectors: BoxLayout, base: str | None = None):
    layout = Layout(connectors=list(connectors), base_sha256=base or file_sha256(path))
    return save_layout(path, load_config(path), layout, REFERENCE, models_root=models, by="ana")


def test_a_resize_is_refused_and_a_move_accepted(station) -> None:
    path, models = station
    with pytest.raises(SetupError, match="J1: the box is 110x50 but its model takes 100x50"):
        save(path, models, BoxLayout(id="J1", box=(10, 20, 110, 50)))
    assert path.read_text() == CONFIG and list_backups(path) == []

    saved = save(path, models, BoxLayout(id="J1", box=(30, 40, 100, 50)))

    assert load_config(path).connectors["J1"].box == (30, 40, 100, 50)
    assert saved.changes == ["J1 moved [10, 20, 100, 50] -> [30, 40, 100, 50]"]


def test_a_connector_without_a_model_is_saved_disabled(station) -> None:
    path, models = station
    save(
        path,
        models,
        BoxLayout(id="J1", box=(10, 20, 100, 50)),
        BoxLayout(id="J2", box=(300, 200, 40, 40)),
    )

    connectors = load_config(path).connectors
    assert connectors["J1"].enabled and not connectors["J2"].enabled


def test_a_save_from_a_stale_page_is_refused_and_names_the_last_save(station) -> None:
    path, models = station
    loaded = file_sha256(path)
    save(path, models, BoxLayout(id="J1", box=(30, 40, 100, 50)))
    written = path.read_text()

    with pytest.raises(StaleConfig, match=r"changed since this page was loaded \(by ana at "):
        save(path, models, BoxLayout(id="J1", box=(10, 20, 100, 50)), base=loaded)
    assert path.read_text() == written

    path.write_text(written + "\n# edited by hand\n")
    with pytest.raises(StaleConfig, match="outside the set-up page at"):
        save(path, models, BoxLayout(id="J1", box=(10, 20, 100, 50)), base=file_sha256(path) + "x")


def test_the_last_saves_are_kept_and_one_restores(station) -> None:
    path, models = station
    for x in range(KEPT_BACKUPS + 2):
        save(path, models, BoxLayout(id="J1", box=(x, 20, 100, 50)))

    kept = list_backups(path)
    assert len(kept) == KEPT_BACKUPS
    assert kept[0].changes == [
        f"J1 moved [{KEPT_BACKUPS}, 20, 100, 50] -> [{KEPT_BACKUPS + 1}, 20, 100, 50]"
    ]
    assert kept[0].by == "ana"
    oldest = kept[-1]
    assert tomllib.loads(oldest.path.read_text())["connectors"]["J1"]["box"] == [1, 20, 100, 50]

    with pytest.raises(StaleConfig):
        restore_backup(path, oldest.name, "0" * 64, models_root=models)
    restore_backup(path, oldest.name, file_sha256(path), models_root=models, by="ana")

    assert load_config(path).connectors["J1"].box == (1, 20, 100, 50)
    newest = list_backups(path)[0]
    assert newest.changes == [f"restored the backup of {oldest.saved_at}"]
    assert tomllib.loads(newest.path.read_text())["connectors"]["J1"]["box"] == [
        KEPT_BACKUPS + 1,
        20,
        100,
        50,
    ]


def test_a_backup_whose_box_no_longer_fits_the_model_is_not_restored(station) -> None:
    path, models = station
    save(path, models, BoxLayout(id="J1", box=(30, 40, 100, 50)))
    install_bundle(models, make_manifest("J1", "v2", 60, 120, 64, 1.0), b"graph2")
    before = path.read_text()

    with pytest.raises(SetupError, match="J1: the box is 100x50 but its model takes 120x60"):
        restore_backup(path, list_backups(path)[0].name, file_sha256(path), models_root=models)
    assert path.read_text() == before and len(list_backups(path)) == 1
