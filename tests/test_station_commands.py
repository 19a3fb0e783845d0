"""Commands that run on a station generate one only in their documented default folder: a
station the user names must exist (with trained models), or the command refuses in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMED_STATION_COMMANDS = ["bench-retrain", "soak"]


def edge_inspect(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=cwd, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("command", NAMED_STATION_COMMANDS)
def test_a_named_station_that_does_not_exist_is_refused_not_generated(
    tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "nonexistent"

    result = edge_inspect(tmp_path, command, "--station", missing)

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edge-inspect {command}: error: --station {missing}: no station config found"
    )
    assert not missing.exists()


@pytest.mark.parametrize("command", NAMED_STATION_COMMANDS)
def test_a_named_station_without_models_is_refused_not_trained(
    tmp_path: Path, command: str
) -> None:
    station = tmp_path / "station"
    station.mkdir()
    (station / "config.toml").write_text("[connectors.J1]\nbox = [0, 0, 8, 8]\n")

    result = edge_inspect(tmp_path, command, "--station", station)

    assert result.returncode == 2
    assert "no active model for J1 (train-all first)" in result.stderr
    assert sorted(p.name for p in station.iterdir()) == ["config.toml"]


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        ("demo", ["--out OUT", "(default: demo)", "(default: 320)", "(default: 0)"]),
        ("bench", ["(default: demo)", "(default: 40)", "(default: 200)"]),
        ("soak", ["(default: demo)", "(default: 15.0)", "(default: 300.0)", "(default: 5)"]),
        ("bench-retrain", ["(default: demo/station, generated", "(default: 30)"]),
    ],
)
def test_the_station_commands_show_their_defaults_and_where_a_station_is_made(
    tmp_path: Path, command: str, defaults: list[str]
) -> None:
    result = edge_inspect(tmp_path, command, "--help")

    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for default in defaults:
        assert default in text
    assert "generated and trained when missing" in text
    assert "(default: None)" not in text
