"""N OPC UA clients in one process, standing for a line's PLCs and MES during a bench: each over
Basic256Sha256 SignAndEncrypt with a password user, subscribed to ResultReadyEvent and to a
camera's handshake counter, counting what it receives.

`python -m trainer.harness.opcua_clients SPEC OUT`: SPEC is the JSON of `ClientsSpec`; OUT is
rewritten every half second with each client's counts; SIGTERM ends it after a last write.

On a line these clients run on other machines; here they share the agent's cores, so the process
runs under Linux's SCHED_IDLE policy (only on CPU nothing else wants): what the bench then
measures is the server's cost to the agent, not the clients'. Their CPU time is still reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.opcua.server import RESULT_NS, VISION_NS
from trainer.harness.opcua_run import ClientIdentity, secure_client
from trainer.harness.station_run import die_with_parent

WRITE_EVERY_S = 0.5


@dataclass(frozen=True)
class ClientsSpec:
    url: str
    server_cert: str
    identity: dict[str, str]
    station_ns: str
    camera: str
    clients: int

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")


@dataclass
class Received:
    """What one client got: events (and Seq gaps or reorders among them), counter changes."""

    subscribed: bool = False
    events: int = 0
    seq_breaks: int = 0
    counter_changes: int = 0
    last_counter: int | None = None
    last_seq: int | None = field(default=None, repr=False)

    def event_notification(self, event: Any) -> None:
        if self.last_seq is not None and event.Seq != self.last_seq + 1:
            self.seq_breaks += 1
        self.events, self.last_seq = self.events + 1, event.Seq

    def datachange_notification(self, node: Any, value: int, data: Any) -> None:
        self.counter_changes += 1
        self.last_counter = value


async def one_client(spec: ClientsSpec, received: Received, stop: asyncio.Event) -> None:
    identity = ClientIdentity(**{k: Path(v) if k in ("cert", "key") else v
                                 for k, v in spec.identity.items()})  # fmt: skip
    client = await secure_client(spec.url, Path(spec.server_cert), identity)
    async with client:
        ns = await client.get_namespace_index(RESULT_NS)
        vision_ns = await client.get_namespace_index(VISION_NS)
        own = await client.get_namespace_index(spec.station_ns)
        vision = await client.nodes.objects.get_child([f"{vision_ns}:VisionSystem"])
        rm = await vision.get_child([f"{ns}:ResultManagement"])
        event_type = await client.nodes.root.get_child(
            ["0:Types", "0:EventTypes", "0:BaseEventType", f"{ns}:ResultReadyEventType"]
        )
        counter = await vision.get_child(
            [f"{own}:Handshake", f"{own}:{spec.camera}", f"{own}:ResultCounter"]
        )
        subscription = await client.create_subscription(50, received)
        await subscription.subscribe_events(rm, event_type, queuesize=1000)
        await subscription.subscribe_data_change(counter)
        received.subscribed = True
        await stop.wait()


async def main(spec: ClientsSpec, out: Path) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counts = [Received() for _ in range(spec.clients)]
    tasks = [asyncio.create_task(one_client(spec, c, stop)) for c in counts]

    def write() -> None:
        failed = [repr(t.exception()) for t in tasks if t.done() and t.exception()]
        rows = [{k: v for k, v in asdict(c).items() if k != "last_seq"} for c in counts]
        write_json_atomic(out, {"clients": rows, "failed": failed})

    while not stop.is_set():
        write()
        if all(t.done() for t in tasks):
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WRITE_EVERY_S)
    await asyncio.gather(*tasks, return_exceptions=True)
    write()


class ClientsProcess:
    """This program as a child process and what it counted. At `nice -n 19`: the clients stand
    for PLCs and MES on other machines, so the line PC gives them only what is left over."""

    def __init__(self, spec: ClientsSpec, work: Path, env: dict[str, str], log_path: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.spec_path, self.out = work / "clients.json", work / "received.json"
        self.log_path = log_path
        spec.write(self.spec_path)
        self.clients, self.env = spec.clients, env
        self.process: subprocess.Popen | None = None

    def counts(self) -> dict[str, Any]:
        try:
            return json.loads(self.out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"clients": [], "failed": []}

    def start(self, timeout: float = 120.0) -> ClientsProcess:
        """Start and wait until every client is subscribed."""
        command = [
            "nice", "-n", "19", sys.executable, "-m", __name__, str(self.spec_path), str(self.out),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + timeout
        while sum(c["subscribed"] for c in self.counts()["clients"]) < self.clients:
            if (
                self.counts()["failed"]
                or self.process.poll() is not None
                or time.monotonic() > deadline
            ):
                failed = self.counts()["failed"]
                raise RuntimeError(f"OPC UA clients not subscribed: {failed}; {self.log_path}")
            time.sleep(0.2)
        return self

    def wait_events(self, expected: int, timeout: float) -> bool:
        """Whether every client received `expected` events within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.counts()["clients"]
            if len(rows) == self.clients and all(c["events"] >= expected for c in rows):
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> dict[str, Any]:
        """End the clients; their last counts."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        return self.counts()


def run_idle() -> None:
    """This process under SCHED_IDLE (kept at its niceness where the policy is refused)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:
        print(f"clients keep their scheduling policy: {exc}", file=sys.stderr)


if __name__ == "__main__":
    run_idle()
    spec = ClientsSpec(**json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    asyncio.run(main(spec, Path(sys.argv[2])))
