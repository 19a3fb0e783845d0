"""Station config: TOML in, EDGE_INSPECT_* overrides on top, every mistake named with its file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edge_agent.contracts.config import ENV_PREFIX, ConfigError
from trainer.settings import load_config

STATION_TOML = """
[station]
name = "line3/aoi"
reference_image = "reference.png"

[connectors.J1]
box = [10, 20, 64, 48]

[connectors.usb-c_2]
box = [100, 20, 32, 32]
enabled = false

[mqtt]
host = "broker.local"
port = 1884
prefix = "/plant/line3/aoi/"

[inputs.drop_folders]
cam1 = "incoming/cam1"

[paths]
models = "models"
state = "/var/lib/edge-inspect"

[training]
roi_file = "rois.json"
"""


@pytest.fixture(autouse=True)
def _no_station_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides from the developer's shell must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "station.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_file_loads_into_the_schema(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, STATION_TOML))

    assert config.station.name == "line3/aoi"
    assert config.connectors["J1"].box == (10, 20, 64, 48)
    assert config.connectors["J1"].enabled
    assert not config.connectors["usb-c_2"].enabled
    assert (config.mqtt.host, config.mqtt.port) == ("broker.local", 1884)
    assert config.mqtt.prefix == "plant/line3/aoi"
    assert config.scoring.workers == 2  # not in the file: the default


def test_relative_paths_are_anchored_at_the_config_folder(tmp_path: Path) -> None:
    station = tmp_path / "station"
    config = load_config(write_config(station, STATION_TOML))

    base = station.resolve()
    assert config.station.reference_image == base / "reference.png"
    assert config.paths.models == base / "models"
    assert config.inputs.drop_folders["cam1"] == base / "incoming" / "cam1"
    assert config.training.roi_file == base / "rois.json"
    assert config.paths.state == Path("/var/lib/edge-inspect")  # absolute stays as written


def test_a_copied_station_folder_points_at_its_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tmp_path / "original"
    write_config(original, STATION_TOML)
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, copy)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter

    config = load_config(Path("elsewhere/copy/station.toml"))

    assert config.paths.models == copy.resolve() / "models"
    assert config.station.reference_image == copy.resolve() / "reference.png"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_INSPECT_MQTT__PORT", "18830")

    config = load_config(write_config(tmp_path, STATION_TOML))

    assert config.mqtt.port == 18830
    assert config.mqtt.host == "broker.local"  # the rest of the section still comes from the file


def test_unknown_key_in_the_file_is_named_with_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[mqtt]\nprot = 1884\n")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert "unknown key 'mqtt.prot'" in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("EDGE_INSPECT_MQTT__PROT", "mqtt.prot"),
        ("EDGE_INSPECT_MQQT__PORT", "mqqt"),
    ],
)
def test_unknown_environment_key_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, key: str
) -> None:
    path = write_config(tmp_path, STATION_TOML)
    monkeypatch.setenv(variable, "18830")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert f"environment variable {variable}: unknown key '{key}'" in str(error.value)
    assert str(path) not in str(error.value)  # the file is not to blame


def test_a_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, STATION_TOML)
    monkeypatch.setenv("edge_inspect_mqtt__port", "eighteen")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value).startswith("environment variable edge_inspect_mqtt__port: 'mqtt.port'")
    assert str(path) not in str(error.value)


def test_a_bad_value_in_the_file_still_names_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[mqtt]\nport = 'eighteen'\n")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value).startswith(f"{path}: 'mqtt.port'")


def test_invalid_toml_is_named_with_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[mqtt\nport = 1884\n")

    with pytest.raises(ConfigError, match="not valid TOML") as error:
        load_config(path)

    assert str(path) in str(error.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "station.toml"

    with pytest.raises(ConfigError, match="not found") as error:
        load_config(path)

    assert str(path) in str(error.value)


@pytest.mark.parametrize("box", ["[10, 20, 0, 48]", "[10, 20, 64, -1]", "[-1, 20, 64, 48]"])
def test_connector_box_without_area_is_rejected(tmp_path: Path, box: str) -> None:
    path = write_config(tmp_path, f"[connectors.J1]\nbox = {box}\n")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert "connectors.J1.box" in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("connector", ["../J1", "J 1", "J1/pin"])
def test_unsafe_connector_id_is_rejected(tmp_path: Path, connector: str) -> None:
    path = write_config(tmp_path, f'[connectors."{connector}"]\nbox = [0, 0, 8, 8]\n')

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert repr(connector) in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("prefix", ["plant/+/aoi", "plant/#", "/"])
def test_mqtt_prefix_with_a_wildcard_or_empty_is_rejected(tmp_path: Path, prefix: str) -> None:
    path = write_config(tmp_path, f'[mqtt]\nprefix = "{prefix}"\n')

    with pytest.raises(ConfigError, match=r"mqtt\.prefix") as error:
        load_config(path)

    assert str(path) in str(error.value)


def test_a_crops_floor_below_the_journal_floor_is_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[storage]\nmin_free_mb = 500\ncrops_min_free_mb = 100\n")

    with pytest.raises(ConfigError, match=r"'storage'.*crops_min_free_mb.*crops give way") as error:
        load_config(path)

    assert str(path) in str(error.value)
