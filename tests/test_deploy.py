"""The install script, the systemd units and the example broker config as shipped."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import install_template_model

from edge_agent.contracts.config import load_config
from trainer.harness.local_broker import free_port

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "deploy" / "install.sh"
UNITS = ROOT / "systemd"
AGENT = UNITS / "edge-inspect-agent.service"
TRAINER = UNITS / "edge-inspect-trainer.service"
CONSOLE = UNITS / "edge-inspect-console.service"
CONFIG_TEMPLATE = ROOT / "config.toml"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto.conf"
SET_PATHS = ROOT / "deploy" / "set_paths.py"


def unit(path: Path) -> dict[str, dict[str, str]]:
    """A unit file as {section: {key: value}}; repeated keys are joined with newlines."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        current[key] = f"{current[key]}\n{value}" if key in current else value
    return sections


def test_install_script_parses_and_explains_itself():
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    result = subprocess.run(
        ["bash", str(INSTALL), "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--config", "--no-enable", "--with-broker", "--wheelhouse"):
        assert option in result.stdout
    assert "set -euo pipefail" in INSTALL.read_text()


def test_install_script_refuses_unknown_options():
    result = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True)

    assert result.returncode != 0
    assert "unknown option: --frobnicate" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_install_script_passes_shellcheck():
    subprocess.run(["shellcheck", str(INSTALL)], check=True)


def test_agent_unit_is_a_notify_service_with_a_progress_watchdog_and_a_sandbox():
    service = unit(AGENT)["Service"]

    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30"
    assert service["Restart"] == "always"
    assert service["RestartSec"] == "2"
    assert service["User"] == "edge-inspect"
    assert service["ExecStart"] == (
        "/opt/edge-inspect/venv/bin/edge-inspect run --config /etc/edge-inspect/config.toml"
    )
    assert service["LoadCredential"] == "mqtt_password:/etc/edge-inspect/mqtt_password"
    assert service["CPUWeight"] == "100"
    assert "MemoryMax" in service and "TimeoutStopSec" in service
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert set(service["ReadWritePaths"].split()) == {
        "/var/lib/edge-inspect",
        "/srv/edge-inspect/drop",
    }
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(service["RestrictAddressFamilies"].split())
    # The broker and the MES are reachable on loopback and the private plant ranges only.
    assert "PrivateNetwork" not in service
    assert service["IPAddressDeny"] == "any"
    assert {"localhost", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        service["IPAddressAllow"].split()
    )
    assert service["MemoryDenyWriteExecute"] == "yes"
    assert unit(AGENT)["Install"]["WantedBy"] == "multi-user.target"


def test_units_read_their_paths_from_the_installed_config_only():
    for path in (AGENT, TRAINER, CONSOLE):
        assert "EDGE_INSPECT_PATHS" not in path.read_text(), path.name
        assert "--config /etc/edge-inspect/config.toml" in unit(path)["Service"]["ExecStart"]
    text = INSTALL.read_text()
    assert '"$repo/deploy/set_paths.py" "$CONF" "$VAR/state" "$VAR/models"' in text
    assert text.index("set_paths.py") < text.index('config_report="$(')  # before it is read


def installed_config(tmp_path: Path) -> tuple[Path, Path]:
    """The template installed as install.sh does (mode 0660), then given the line's paths."""
    etc, var = tmp_path / "etc", tmp_path / "var"
    etc.mkdir()
    config = etc / "config.toml"
    shutil.copyfile(CONFIG_TEMPLATE, config)
    config.chmod(0o660)
    result = subprocess.run(
        [sys.executable, str(SET_PATHS), str(config), str(var / "state"), str(var / "models")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"paths.state = {var / 'state'}" in result.stdout
    return config, var


def test_the_installed_config_holds_the_lines_state_and_models(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("EDGE_INSPECT_"):
            monkeypatch.delenv(name)
    config, var = installed_config(tmp_path)

    loaded = load_config(config)

    assert (loaded.paths.state, loaded.paths.models) == (var / "state", var / "models")
    text = config.read_text()
    assert text.splitlines()[:3] == CONFIG_TEMPLATE.read_text().splitlines()[:3]  # comments kept
    assert "# the OK board every photo is registered to" in text
    assert config.stat().st_mode & 0o777 == 0o660
    again = subprocess.run(
        [sys.executable, str(SET_PATHS), str(config), str(var / "state"), str(var / "models")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert again.stdout == ""  # already set: the file is left as it is
    assert config.read_text() == text


def test_a_shell_command_looks_where_the_service_writes(tmp_path):
    config, var = installed_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("EDGE_INSPECT_")}

    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "confirm", "01J9Z6Q8M3K4T2", "OK",
         "--config", str(config)],
        env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, capture_output=True, text=True,
        check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert f"{var / 'state' / 'journal.sqlite'}: no journal" in result.stderr


def test_trainer_runs_on_the_config_schedule_at_low_priority():
    trainer = unit(TRAINER)
    service = trainer["Service"]

    # One source for the schedule: the service reads retrain.schedule; no timer beside it.
    assert service["ExecStart"].endswith(
        "edge-inspect trainer --config /etc/edge-inspect/config.toml"
    )
    assert service["Restart"] == "on-failure"
    assert not list(UNITS.glob("*.timer"))
    assert "OnCalendar" not in TRAINER.read_text()
    assert service["CPUWeight"] == "20"
    assert service["Nice"] == "10"
    assert service["IOSchedulingClass"] == "idle"
    assert trainer["Install"]["WantedBy"] == "multi-user.target"
    assert 'schedule = "0 2 * * *"' in CONFIG_TEMPLATE.read_text()


def test_install_script_installs_the_annotated_template_without_a_station_config():
    text = INSTALL.read_text()

    assert "station_config=$repo/config.toml" in text
    assert "edge-inspect-trainer.timer" not in text.split("OLD_TIMER=")[0]


def test_console_unit_serves_localhost_at_low_priority_in_a_sandbox():
    service = unit(CONSOLE)["Service"]
    agent = unit(AGENT)["Service"]

    assert service["ExecStart"] == (
        "/opt/edge-inspect/venv/bin/edge-inspect console --config /etc/edge-inspect/config.toml"
        " --host 127.0.0.1 --port 8788"
    )
    assert service["User"] == "edge-inspect"
    assert service["LoadCredential"] == "console_users:/etc/edge-inspect/console_users"
    assert service["CPUWeight"] == "20"
    assert int(service["Nice"]) > 0
    assert "MemoryMax" in service
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/edge-inspect", "/etc/edge-inspect"}
    assert service["CapabilityBoundingSet"] == ""
    assert service["Environment"] == agent["Environment"]
    assert "edge-inspect-console.service" in INSTALL.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_units_pass_systemd_analyze_verify(tmp_path):
    stub = tmp_path / "edge-inspect"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    copies = []
    for path in (AGENT, TRAINER, CONSOLE):
        copy = tmp_path / path.name
        copy.write_text(
            path.read_text().replace("/opt/edge-inspect/venv/bin/edge-inspect", str(stub))
        )
        copies.append(str(copy))

    result = subprocess.run(
        ["systemd-analyze", "verify", *copies], capture_output=True, text=True, cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
@pytest.mark.parametrize("path", [AGENT, TRAINER, CONSOLE], ids=lambda p: p.stem)
def test_units_expose_at_most_2_0_to_systemd_analyze_security(path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
    )

    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout


_SCORE_UNDER_MDWE = """
import ctypes, sys
import numpy as np
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("no PR_SET_MDWE on this kernel"); sys.exit(3)
from edge_agent.inspect.imaging import decode_image, encode_png
from edge_agent.inspect.scoring import ConnectorModel
model = ConnectorModel.load(sys.argv[1], threads=2)
crop = decode_image(encode_png(np.full((24, 40, 3), 90, np.uint8)), 10**6, 10**6)
print("mdwe", libc.prctl(66, 0, 0, 0, 0), "score", model.score(crop).score)
"""


def test_agent_inference_runs_without_writable_executable_memory(tmp_path):
    """The agent unit sets MemoryDenyWriteExecute: decode and score a real ONNX model in a
    process under the kernel's same rule (prctl PR_SET_MDWE, Linux 6.3 and later)."""
    bundle = install_template_model(
        tmp_path / "models", "J1", "2026-01-01.1", np.full((24, 40, 3), 100, np.float32), 16, 50.0
    )

    result = subprocess.run(
        [sys.executable, "-c", _SCORE_UNDER_MDWE, str(bundle)], capture_output=True, text=True
    )

    if result.returncode == 3:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"mdwe 1 score [0-9.e+-]+\n", result.stdout), result.stdout


def test_mosquitto_example_has_tls_auth_persistence_and_a_loopback_listener():
    text = MOSQUITTO_CONF.read_text()
    directives = [line for line in text.splitlines() if line and not line.startswith("#")]

    for expected in (
        "listener 8883",
        "allow_anonymous false",
        "persistence true",
        "listener 1883 127.0.0.1",
    ):
        assert expected in directives
    for key in ("cafile", "certfile", "keyfile", "password_file"):
        assert any(line.startswith(key + " ") for line in directives)
    commented = re.compile(
        r"^#\s*(listener|allow_anonymous|password_file|cafile|certfile|keyfile)\b"
    )
    assert not any(commented.match(line) for line in text.splitlines())


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(
    shutil.which("mosquitto") is None or shutil.which("openssl") is None,
    reason="mosquitto or openssl not installed",
)
def test_mosquitto_starts_with_the_example_config():
    # Run as root, mosquitto drops to its own user: its files must be world-readable.
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        workdir.chmod(0o755)
        _run_example_broker(workdir)


def _run_example_broker(tmp_path: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
    )
    (tmp_path / "passwd").write_text("")
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    tls_port, plain_port = free_port(), free_port()
    conf = (
        MOSQUITTO_CONF.read_text()
        .replace("/etc/mosquitto/certs", str(tmp_path))
        .replace("/etc/mosquitto/passwd", str(tmp_path / "passwd"))
        .replace("/var/lib/mosquitto/", f"{tmp_path}/")
        .replace("listener 8883", f"listener {tls_port}")
        .replace("listener 1883 127.0.0.1", f"listener {plain_port} 127.0.0.1")
    )
    (tmp_path / "mosquitto.conf").write_text(conf)

    broker = subprocess.Popen(
        ["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and broker.poll() is None:
            if accepts(tls_port) and accepts(plain_port):
                break
            time.sleep(0.05)
        assert broker.poll() is None, broker.communicate()[0]
        assert accepts(tls_port) and accepts(plain_port)
    finally:
        broker.terminate()
        broker.wait(timeout=10)
