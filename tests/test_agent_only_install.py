"""The commands on an agent-only install (no [train] extra): the trainer's commands say which
extra to install in one line; the agent's commands do not need it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
TRAINER_COMMANDS = [name for name, (module, _) in COMMANDS.items() if module.startswith("trainer.")]
AGENT_COMMANDS = [
    name for name, (module, _) in COMMANDS.items() if module.startswith("edge_agent.")
]
INSTALL_LINE = "pip install 'edge-inspect[train]'"


@pytest.fixture(scope="module")
def without_torch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose interpreter cannot import torch, as on an agent-only install."""
    shim = tmp_path_factory.mktemp("no-torch")
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    return {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{ROOT}"}


def edge_inspect(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_train_without_torch_names_the_extra_to_install(
    without_torch: dict[str, str], tmp_path: Path
) -> None:
    result = edge_inspect(without_torch, tmp_path, "train", "--data", "crops", "--out", "models")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "edge-inspect train: error: needs the 'train' extra (torch is not installed): "
        + INSTALL_LINE
    ]
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", TRAINER_COMMANDS)
def test_every_trainer_command_without_torch_says_so_in_one_line(
    without_torch: dict[str, str], tmp_path: Path, command: str
) -> None:
    result = edge_inspect(without_torch, tmp_path, command, "--help")

    assert "Traceback" not in result.stderr
    if result.returncode != 0:  # a command that does not need torch for its help prints it
        assert result.returncode == 2
        assert result.stderr.strip().endswith(INSTALL_LINE), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("command", AGENT_COMMANDS)
def test_the_agent_commands_need_no_torch(
    without_torch: dict[str, str], tmp_path: Path, command: str
) -> None:
    result = edge_inspect(without_torch, tmp_path, command, "--help")

    assert result.returncode == 0, result.stderr
    assert f"usage: edge-inspect {command}" in result.stdout
