"""The console's guard: localhost unless users exist, hashed passwords, login and CSRF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from console_station import ROOT, ConsoleProcess, HttpClient, env_without_auth

from edge_agent.console.auth import UsersError, hash_password, load_users, verify_password


@pytest.fixture
def station_config(tmp_path: Path) -> Path:
    """A station config with no connectors and an empty state folder."""
    config = tmp_path / "config.toml"
    config.write_text('[station]\nname = "test/console"\n[health]\nenabled = false\n')
    return config


def console_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "console", *args],
        env={**env_without_auth(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_console_refuses_another_address_without_users(station_config: Path) -> None:
    result = console_command("--config", str(station_config), "--host", "0.0.0.0")

    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "--users FILE" in result.stderr


def test_console_refuses_a_users_file_it_cannot_use(station_config: Path, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice:plaintext-password\n")

    result = console_command("--config", str(station_config), "--users", str(users))

    assert result.returncode == 2
    assert f"{users}:1: expected NAME:scrypt$" in result.stderr


def test_hash_password_prints_a_line_that_verifies() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "console", "--hash-password", "alice"],
        input="s3cret-pass\n",
        env={**env_without_auth(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    name, stored = result.stdout.strip().split(":", 1)

    assert name == "alice"
    assert stored.startswith("scrypt$")
    assert "s3cret-pass" not in stored
    assert verify_password("s3cret-pass", stored)
    assert not verify_password("s3cret-pasS", stored)


def test_two_hashes_of_one_password_differ_by_salt() -> None:
    first, second = hash_password("same"), hash_password("same")

    assert first != second
    assert verify_password("same", first) and verify_password("same", second)


def test_users_file_without_users_is_refused(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("# nobody yet\n")

    with pytest.raises(UsersError, match="no users"):
        load_users(users)


@pytest.fixture
def guarded(station_config: Path, tmp_path: Path):
    """A console on localhost that has one user, alice."""
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('correct horse')}\n")
    console = ConsoleProcess(
        station_config, env_without_auth(), tmp_path / "console.log", "--users", str(users)
    )
    yield console
    console.stop()


def login(client: HttpClient, password: str) -> int:
    client.get("/login")
    body = (
        f"user=alice&password={password.replace(' ', '+')}&next=%2Fhealth&csrf_token={client.token}"
    )
    status, _, _ = client.request(
        "POST", "/login", body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    return status


def test_pages_and_api_need_a_login_when_users_exist(guarded: ConsoleProcess) -> None:
    client = HttpClient(guarded.url)

    status, _, headers = client.get("/review")
    assert status == 303
    assert headers["location"] == "/login?next=%2Freview"
    assert client.get("/api/feed")[0] == 401
    assert login(client, "wrong password") == 401
    assert client.get("/api/feed")[0] == 401

    assert login(client, "correct horse") == 303
    status, page, _ = client.get("/health")
    assert status == 200
    assert b"alice" in page
    assert client.get_json("/api/feed") == {"boards": [], "older": None}


def test_a_post_without_the_sessions_csrf_token_is_refused(guarded: ConsoleProcess) -> None:
    client = HttpClient(guarded.url)
    client.get("/login")
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    status, body, _ = client.request("POST", "/login", b"user=alice&password=x", form)
    assert status == 403
    assert b"CSRF" in body
    status, _, _ = client.request(
        "POST", "/login", b"user=alice&password=x&csrf_token=forged", form
    )
    assert status == 403
    cross_site = {**form, "Origin": "http://evil.example", "X-CSRF-Token": client.token or ""}
    status, body, _ = client.request("POST", "/login", b"user=alice&password=x", cross_site)
    assert status == 403
    assert b"cross-origin" in body
