"""The annotated top-level config.toml: every schema key, each with its default, loads."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel

from edge_agent.contracts.config import ENV_PREFIX, StationConfig, load_config
from trainer.settings import TrainerConfig
from trainer.settings import load_config as load_trainer_config

TEMPLATE = Path(__file__).resolve().parents[1] / "config.toml"
_HEADER = re.compile(r"^#?\s*\[([^\]]+)\]")
_KEY = re.compile(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")


@pytest.fixture(autouse=True)
def _no_station_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def schema_keys(model: type[BaseModel], section: str = "") -> set[tuple[str, str]]:
    """(section, key) of every field, nested sections and dict-of-section tables included."""
    keys = set()
    for name, field in model.model_fields.items():
        nested = _model_of(field.annotation)
        if get_origin(field.annotation) is dict:
            nested_value = _model_of(get_args(field.annotation)[1])
            if nested_value is not None:  # [connectors.<id>]
                keys |= schema_keys(nested_value, f"{section}{name}.*".lstrip("."))
                continue
        if nested is not None:
            keys |= schema_keys(nested, f"{section}.{name}".lstrip("."))
        else:
            keys.add((section, name))
    return keys


def written_keys(text: str) -> set[tuple[str, str]]:
    """(section, key) of every assignment in the file, commented-out ones included."""
    keys, section = set(), ""
    for line in text.splitlines():
        if header := _HEADER.match(line):
            parts = header.group(1).replace('"', "").split(".")
            section = ".".join(parts if parts[0] != "connectors" else ["connectors", "*"])
            if section == "inputs.drop_folders":
                keys.add(("inputs", "drop_folders"))
        elif (key := _KEY.match(line)) and section != "inputs.drop_folders":
            keys.add((section, key.group(1)))
    return keys


def test_every_schema_key_is_in_the_template() -> None:
    missing = schema_keys(TrainerConfig) - written_keys(TEMPLATE.read_text(encoding="utf-8"))

    assert not missing, f"config.toml lacks {sorted('.'.join(k) for k in missing)}"


def test_the_template_holds_the_defaults() -> None:
    data = tomllib.loads(TEMPLATE.read_text(encoding="utf-8"))

    written = TrainerConfig(**data).model_dump()
    defaults = TrainerConfig().model_dump()

    differing = {
        f"{section}.{key}": (value, defaults[section][key])
        for section, values in written.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if value != defaults[section].get(key)
    }
    assert not differing, f"config.toml value vs schema default: {differing}"


def test_the_template_loads_for_the_agent_and_the_trainer() -> None:
    assert isinstance(load_config(TEMPLATE), StationConfig)
    assert load_trainer_config(TEMPLATE).retrain.schedule == "0 2 * * *"


def test_the_key_walk_sees_the_trainer_sections_and_nested_tables() -> None:
    keys = schema_keys(TrainerConfig)

    assert {("training", "method"), ("retrain", "schedule"), ("mqtt.tls", "ca_file")} <= keys
    assert ("connectors.*", "box") in keys


def test_the_agent_knows_every_trainer_key_by_name() -> None:
    from edge_agent.contracts.config import TRAINER_KEYS
    from trainer.settings import RetrainSettings, TrainingSettings

    assert set(TRAINER_KEYS["training"]) == set(TrainingSettings.model_fields)
    assert set(TRAINER_KEYS["retrain"]) | {"shadow_boards"} == set(RetrainSettings.model_fields)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[training]\nmetod = 'padim'\n", "training.metod"),
        ("[retrain]\nrolout = 1\n", "retrain.rolout"),
    ],
)
def test_the_agent_refuses_an_unknown_trainer_key_too(tmp_path: Path, text: str, key: str) -> None:
    from edge_agent.contracts.config import ConfigError

    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        load_config(path)
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        load_trainer_config(path)


def test_the_training_keys_the_agent_types_have_the_trainers_defaults() -> None:
    from edge_agent.contracts.config import TrainingSection
    from trainer.settings import TrainingSettings

    for key in ("input_size", "roi_file"):
        assert (
            TrainingSection.model_fields[key].default == TrainingSettings.model_fields[key].default
        )
