"""An operator console beside a benchmarked agent, with its live feed open and polling.

`edge-inspect bench --console` measures the agent while this runs, so the claim that the
console never slows the inspection path is a number, not a hope.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from trainer.harness.local_broker import free_port
from trainer.harness.station_run import die_with_parent

POLL_S = 0.7  # what the feed page's script waits between two polls


class ConsoleWatch:
    """`edge-inspect console` as a child process (the agent's environment: same state), and a
    client that loads the feed and asks for new rows every `POLL_S`, as an open page does."""

    def __init__(self, config_path: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "edge_agent.cli", "console",
            "--config", str(config_path), "--port", str(self.port),
        ]  # fmt: skip
        self.env, self.log_path = env, log_path
        self.polls = self.rows_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="console-feed", daemon=True)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ConsoleWatch:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=log, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + 60
        while not self._get("/"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the console did not start; see {self.log_path}")
            time.sleep(0.2)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def _get(self, path: str) -> tuple[bytes, dict[str, str]] | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.read(), dict(response.headers)
        except OSError:
            return None

    def _poll(self) -> None:
        cursor = "0"
        while not self._stop.wait(POLL_S):
            answer = self._get(f"/feed/rows?after={cursor}")
            if answer is None:
                continue
            body, headers = answer
            self.polls += 1
            self.rows_seen += body.count(b"<tr")
            cursor = headers.get("X-Feed-Cursor", cursor)
