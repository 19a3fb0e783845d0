"""`edge-inspect models` and `confirm` as a user runs them: refusals and who is recorded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from onnx_fixtures import install_bundle, make_manifest

from edge_agent.contracts.config import ENV_PREFIX
from edge_agent.feedback import lifecycle

ROOT = Path(__file__).resolve().parents[1]
NO_PASSWD_UID = 4242
LOGIN_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")


def edge_inspect(
    *args: str | Path, cwd: Path, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`edge-inspect ARGS` in its own process, without the caller's station variables."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "edge_agent.cli", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def without_passwd_entry() -> tuple[str, ...]:
    """A command prefix running as a uid that has no passwd entry and no login variables."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not installed")
    prefix = ("unshare", "--user", f"--map-user={NO_PASSWD_UID}", "env",
              *(f"--unset={name}" for name in LOGIN_VARIABLES))  # fmt: skip
    probe = subprocess.run([*prefix, "id", "-u"], capture_output=True, text=True, check=False)
    if probe.returncode != 0 or probe.stdout.strip() != str(NO_PASSWD_UID):
        pytest.skip(f"user namespaces unavailable: {probe.stderr.strip()}")
    return prefix


def station(tmp_path: Path, models: str = "models") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[connectors.J1]\nbox = [0, 0, 32, 24]\n[paths]\nmodels = "{models}"\n', encoding="utf-8"
    )
    return path


def add(models: Path, version: str, active: bool) -> None:
    manifest = make_manifest("J1", version, 24, 32, 16, 10.0)
    install_bundle(models, manifest, f"graph {version}".encode(), make_active=active)


def test_models_list_without_a_config_is_an_error(tmp_path: Path) -> None:
    result = edge_inspect("models", "list", cwd=tmp_path)

    assert result.returncode == 2
    assert "no enabled connector" in result.stderr
    assert result.stdout == ""


def test_models_list_with_a_missing_models_folder_is_an_error(tmp_path: Path) -> None:
    config = station(tmp_path, models="nowhere")

    result = edge_inspect("models", "list", "--config", config, cwd=tmp_path)

    assert result.returncode == 2
    assert f"paths.models {tmp_path / 'nowhere'} is not a folder" in result.stderr
    assert result.stdout == ""


def test_models_list_of_a_station_shows_its_versions(tmp_path: Path) -> None:
    config = station(tmp_path)
    add(tmp_path / "models", "2026-09-01.1", active=True)

    result = edge_inspect("models", "list", "--config", config, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["J1", "2026-09-01.1"]


@pytest.mark.parametrize("command", [("models", "promote"), ("models", "rollback"), ("confirm",)])
def test_help_works_without_a_passwd_entry(tmp_path: Path, command: tuple[str, ...]) -> None:
    result = edge_inspect(*command, "--help", cwd=tmp_path, prefix=without_passwd_entry())

    assert result.returncode == 0, result.stderr
    assert "--by" in result.stdout


def test_promote_without_a_passwd_entry_records_the_uid(tmp_path: Path) -> None:
    config = station(tmp_path)
    add(tmp_path / "models", "2026-09-01.1", active=True)
    add(tmp_path / "models", "2026-09-02.1", active=False)

    result = edge_inspect(
        *("models", "promote", "J1", "2026-09-02.1", "--config", config),
        cwd=tmp_path,
        prefix=without_passwd_entry(),
    )

    assert result.returncode == 0, result.stderr
    state = lifecycle.state(tmp_path / "models", "J1")
    assert state.active == "2026-09-02.1"
    assert state.last_event is not None and state.last_event["by"] == f"cli:uid-{NO_PASSWD_UID}"
