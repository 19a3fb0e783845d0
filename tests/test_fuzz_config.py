"""Fuzzing the station config files (hypothesis): the agent's schema and the trainer's.

TOML documents of known and unknown sections and keys holding values of any type, written by
tomlkit, and raw garbage bytes: `load_config` returns a config or raises a ConfigError whose
every line names the file and, unless the file is not TOML at all, the key at fault; never
another exception.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from edge_agent.contracts.config import ENV_PREFIX, ConfigError, StationConfig, load_config
from trainer.settings import TrainerConfig

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = {
    "station": {"name": "line1/aoi", "reference_image": "reference.png", "camera": "cam1"},
    "connectors": {"J1": {"box": [10, 20, 64, 48]}},
    "mqtt": {"prefix": "plant/line1/aoi"},
}
# Names pydantic-settings would take as its own options if they reached the schema as keywords.
SETTINGS_OPTIONS = ["_env_file", "_env_prefix", "_secrets_dir", "_case_sensitive",
                    "_cli_parse_args", "_env_nested_delimiter", "_build_sources"]  # fmt: skip


def _known_keys(schema: type[StationConfig]) -> dict[str, dict[str, Any]]:
    """Section -> its keys and their defaults (TOML-able), read from the schema itself."""
    keys: dict[str, dict[str, Any]] = {}
    for name, field in schema.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            defaults = model().model_dump(mode="json")
            keys[name] = {key: defaults.get(key) for key in model.model_fields}
        else:  # connectors: id -> {box, enabled}
            keys[name] = {"J1": {"box": [1, 2, 3, 4]}, "usb-c_2": {"enabled": False}}
    return keys


SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
    st.dates(),
    st.sampled_from(["", "cam1", "reference.png", "plant/x", "+", "#", "../..", "/", "auto",
                     "json", "INFO", "shadow", "patchcore", "0 2 * * *", "\x00", "J1"]),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=2)
    ),
    max_leaves=5,
)


def _near(default: Any) -> st.SearchStrategy[Any]:
    """Values of the default's own type, where most mistakes in a real file are."""
    if isinstance(default, bool) or default is None:
        return st.booleans()
    if isinstance(default, int):
        return st.integers(-2 * abs(default) - 2, 2 * abs(default) + 2)
    if isinstance(default, float):
        return st.floats(-2 * abs(default) - 2, 2 * abs(default) + 2)
    if isinstance(default, str):
        return st.sampled_from([default, default.upper(), default + "/", f"{default} {default}"])
    return st.just(default)


@st.composite
def documents(draw: st.DrawFn, schema: type[StationConfig]) -> dict[str, Any]:
    """Known and unknown sections with known and unknown keys holding values of their own type
    or any other; at times a table replaced by a value; often a valid station changed a little."""
    known = _known_keys(schema)
    doc = {section: dict(table) for section, table in draw(st.sampled_from([{}, VALID])).items()}
    strange = st.one_of(st.sampled_from(SETTINGS_OPTIONS), st.text(max_size=8))
    names = st.integers(0, 9).flatmap(
        lambda n: strange if n == 0 else st.sampled_from(sorted(known))
    )
    for section in draw(st.lists(names, max_size=3, unique=True)):
        if section not in known or draw(st.integers(0, 9)) == 0:
            doc[section] = draw(VALUES)
            continue
        table = doc.setdefault(section, {})
        for _ in range(draw(st.integers(1, 3))):
            key = draw(
                strange if draw(st.integers(0, 9)) == 0 else st.sampled_from(sorted(known[section]))
            )
            near = _near(known[section][key]) if key in known[section] else VALUES
            table[key] = draw(st.one_of(near, near, VALUES))
    return doc


def toml_text(doc: dict[str, Any]) -> str:
    try:
        return tomlkit.dumps(doc)
    except (ValueError, TypeError, tomlkit.exceptions.TOMLKitError):
        assume(False)  # a value TOML cannot hold: not a file anyone can write
        raise


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The file each example is written to, with no EDGE_INSPECT_* variable around."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith(ENV_PREFIX):
                patch.delenv(name)
        yield tmp_path_factory.mktemp("fuzz-config") / "station.toml"


def load_or_name_the_problem(path: Path, schema: type[StationConfig]) -> StationConfig | None:
    """The config, or None after checking that the ConfigError names the file and the key."""
    try:
        config = load_config(path, schema)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines, "an empty ConfigError"
        for line in lines:
            assert line.startswith(f"{path}: "), line
            problem = line[len(f"{path}: ") :]
            assert re.match(r"not valid TOML: |unknown key '.*'|'.+': ", problem), line
        event("refused")
        return None
    assert isinstance(config, schema)
    event("loaded")
    return config


@settings(FUZZ, max_examples=1000)
@given(doc=documents(StationConfig))
def test_any_station_document_loads_or_is_refused_naming_file_and_key(
    config_path: Path, doc: dict[str, Any]
) -> None:
    config_path.write_text(toml_text(doc), encoding="utf-8")

    config = load_or_name_the_problem(config_path, StationConfig)

    if config is not None:
        assert config.station.reference_image.is_absolute()  # anchored at the file's folder


@settings(FUZZ, max_examples=600)
@given(doc=documents(TrainerConfig))
def test_any_trainer_document_loads_or_is_refused_naming_file_and_key(
    config_path: Path, doc: dict[str, Any]
) -> None:
    config_path.write_text(toml_text(doc), encoding="utf-8")

    load_or_name_the_problem(config_path, TrainerConfig)


@settings(FUZZ, max_examples=800)
@given(data=st.one_of(st.binary(max_size=256), st.text(max_size=256).map(str.encode)))
@example(data=b"a = " + b"[" * 5000)
@example(data=b"a = " + b"{b = " * 2000)
@example(data=b"[station]\nname = \xff\xfe\n")
def test_raw_bytes_load_or_are_refused_naming_the_file(config_path: Path, data: bytes) -> None:
    config_path.write_bytes(data)

    for schema in (StationConfig, TrainerConfig):
        load_or_name_the_problem(config_path, schema)
