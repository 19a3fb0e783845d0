"""A private mosquitto on a free loopback port, for the demo, the benches and the tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from edge_agent.ops.user_name import current_user

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


class BrokerError(RuntimeError):
    """mosquitto is missing or would not start."""


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def mosquitto_binary() -> str:
    """The mosquitto executable (Debian installs it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerError("mosquitto not found: apt-get install -y mosquitto")
    return found


class LocalBroker:
    """A mosquitto process of our own; `restart()` keeps the port and, by default, its state.

    With `persistence` (default) retained messages and persistent sessions survive a clean
    restart, as on a plant broker; `kill()` loses what was not saved. A `password_file`
    (made with mosquitto_passwd) turns anonymous access off. Without `workdir` a temporary
    folder is used and removed by `close()`.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        extra_config: Sequence[str] = (),
        persistence: bool = True,
        password_file: Path | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="edge-inspect-broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.log_path = self.workdir / "mosquitto.log"
        self.config_path = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous false" if password_file else "allow_anonymous true",
            *([f"password_file {password_file}"] if password_file else []),
            f"user {current_user()}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            *extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._binary = mosquitto_binary()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalBroker:
        """Start mosquitto and wait until the port accepts connections."""
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [self._binary, "-c", str(self.config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError(f"mosquitto exited at start-up:\n{self.log_tail()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {HOST}:{self.port}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop cleanly (SIGTERM: mosquitto saves its state) and wait for the process."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Crash the broker (SIGKILL): unsaved state is lost."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.kill()
        process.wait()

    def freeze(self) -> None:
        """Pause the broker (SIGSTOP): connections stay open but nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def restart(self, crash: bool = False) -> None:
        """Stop (or kill, with `crash`) and start again on the same port."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        """The end of mosquitto's own log, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Stop, and remove the working folder when it was a temporary one."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
