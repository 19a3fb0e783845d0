"""`edge-inspect run` refuses to start, in one clear line and a non-zero exit, on a station it
cannot serve: a connector box outside the reference image, a health port already in use, an
MQTT password, CA, certificate or key file missing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.inspect.imaging import encode_png

ROOT = Path(__file__).resolve().parents[1]


def write_station(root: Path, box: list[int], port: int) -> Path:
    """A station with a 640x480 reference, no broker and its health endpoints on `port`."""
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    (root / "reference.png").write_bytes(encode_png(reference))
    (root / "config.toml").write_text(
        "\n".join(
            [
                "[station]",
                'reference_image = "reference.png"',
                "[connectors.J1]",
                "box = [10, 10, 100, 50]",
                "[connectors.J2]",
                f"box = {box}",
                "[paths]",
                'models = "models"',
                'state = "state"',
                "[mqtt]",
                "enabled = false",
                "[health]",
                f"port = {port}",
                "[logging]",
                'format = "json"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return root / "config.toml"


def run_agent(config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_box_outside_the_reference_stops_the_agent_naming_box_and_size(
    tmp_path: Path, busy_port: int
) -> None:
    config = write_station(tmp_path, [600, 400, 100, 50], busy_port)

    result = run_agent(config)

    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    assert "connectors.J2.box [600, 400, 100, 50] reaches outside the reference image" in output
    assert f"{tmp_path / 'reference.png'} (640x480 px)" in output
    assert "connectors.J1" not in output  # the box inside the reference is not named


def test_health_port_in_use_is_one_error_line_and_exit_1(tmp_path: Path, busy_port: int) -> None:
    config = write_station(tmp_path, [500, 400, 100, 50], busy_port)

    result = run_agent(config)

    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "agent cannot start" in line]
    assert len(errors) == 1
    assert f"cannot listen on 127.0.0.1:{busy_port}" in errors[0]
    assert "health.port" in errors[0]


def startup_lines(output: str) -> list[str]:
    """The output less the lines about models (this station has none)."""
    return [line for line in output.splitlines() if "model not loaded" not in line]


def test_health_port_in_use_prints_nothing_beside_its_error_line(
    tmp_path: Path, busy_port: int
) -> None:
    config = write_station(tmp_path, [500, 400, 100, 50], busy_port)

    result = run_agent(config)

    lines = startup_lines(result.stdout + result.stderr)
    assert len(lines) == 1, lines
    assert "agent cannot start" in lines[0]


def with_mqtt(config: Path, *lines: str) -> Path:
    """The station of `write_station`, its broker enabled with `lines` added to [mqtt]."""
    text = config.read_text(encoding="utf-8")
    mqtt = "\n".join(["[mqtt]", "enabled = true", "port = 1", *lines])
    config.write_text(text.replace("[mqtt]\nenabled = false", mqtt), encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("lines", "key", "missing"),
    [
        (['username = "line"', 'password_file = "absent.pw"'], "mqtt.password_file", "absent.pw"),
        (["[mqtt.tls]", "enabled = true", 'ca_file = "absent-ca.crt"'], "mqtt.tls.ca_file",
         "absent-ca.crt"),
        (["[mqtt.tls]", "enabled = true", 'cert_file = "absent.crt"', 'key_file = "absent.key"'],
         "mqtt.tls.cert_file", "absent.crt"),
    ],
)  # fmt: skip
def test_a_missing_mqtt_credential_file_is_one_line_naming_file_and_key(
    tmp_path: Path, lines: list[str], key: str, missing: str
) -> None:
    config = with_mqtt(write_station(tmp_path, [500, 400, 100, 50], 0), *lines)

    result = run_agent(config)

    assert result.returncode == 1
    output = startup_lines(result.stdout + result.stderr)
    assert len(output) == 1, output
    assert "agent cannot start" in output[0]
    assert str(tmp_path / missing) in output[0] and key in output[0]
