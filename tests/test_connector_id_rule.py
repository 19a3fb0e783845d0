"""One connector-id rule: the config, the bundle manifest, the journal, the console and the
trainer accept and refuse the same ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.console.routes.review import ConfirmRequest
from edge_agent.console.station_setup import BoxLayout
from edge_agent.contracts.bundle import Manifest
from edge_agent.contracts.config import ConfigError, load_config
from edge_agent.contracts.names import is_connector_id
from edge_agent.store.journal import Journal

ROOT = Path(__file__).resolve().parents[1]
VALID = ["J1", "conn_2-b", "x" * 64]
INVALID = ["Jé", "Ｊ1", "J 1", "J1\n", "J/1", "", "x" * 65]


def config_accepts(tmp_path: Path, cid: str) -> bool:
    path = tmp_path / "config.toml"
    escaped = cid.replace("\\", "\\\\").replace("\n", "\\n")
    path.write_text(f'[connectors."{escaped}"]\nbox = [0, 0, 8, 8]\n', encoding="utf-8")
    try:
        return list(load_config(path).connectors) == [cid]
    except ConfigError:
        return False


def manifest_accepts(cid: str) -> bool:
    from onnx_fixtures import make_manifest

    fields = make_manifest("J1", "2026-09-01.1", 8, 8, 8, 1.0).model_dump(by_alias=True)
    try:
        Manifest.model_validate({**fields, "connector": cid})
    except ValidationError:
        return False
    return True


def journal_accepts(journal: Journal, cid: str) -> bool:
    try:
        journal.record_confirmation("01J9Z6Q8M3K4T2", cid, "OK", "anna")
    except ValueError as exc:
        return "not a valid connector id" not in str(exc)
    return True


def console_accepts(cid: str) -> tuple[bool, bool]:
    def valid(model: type, **fields: object) -> bool:
        try:
            model.model_validate(fields)
        except ValidationError:
            return False
        return True

    return (
        valid(BoxLayout, id=cid, box=(0, 0, 8, 8)),
        valid(ConfirmRequest, result_id="01J9Z6Q8M3K4T2ABCDEFGHJKMN", connector=cid, label="OK"),
    )


@pytest.mark.parametrize("cid", VALID + INVALID)
def test_every_part_applies_the_same_connector_id_rule(
    tmp_path: Path, journal: Journal, cid: str
) -> None:
    expected = cid in VALID

    assert is_connector_id(cid) is expected
    assert config_accepts(tmp_path, cid) is expected
    assert manifest_accepts(cid) is expected
    assert journal_accepts(journal, cid) is expected
    assert console_accepts(cid) == (expected, expected)


def test_the_config_names_the_rule_and_the_id(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[connectors."Jé"]\nbox = [0, 0, 8, 8]\n', encoding="utf-8")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value).startswith(f"{path}: 'connectors.Jé': connector id 'Jé' must be")
    assert "ASCII letters, digits, '-' or '_'" in str(error.value)


def test_train_refuses_a_connector_id_the_agent_could_not_use(tmp_path: Path) -> None:
    crops = tmp_path / "crops" / "Jé"
    for split in ("train/ok", "test/ok"):
        (crops / split).mkdir(parents=True)
        for index in range(10):
            image = np.full((16, 16, 3), 20 * index, np.uint8)
            cv2.imwrite(str(crops / split / f"c{index}.png"), image)

    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "train", "--data", str(crops),
         "--out", str(tmp_path / "models")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    assert "connector id 'Jé' must be 1 to 64 ASCII letters" in result.stderr
    assert not (tmp_path / "models").exists()
