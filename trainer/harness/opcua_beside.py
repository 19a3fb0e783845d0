"""The OPC UA server and N subscribed clients beside a benchmarked agent.

`edge-inspect bench --opcua-clients N` measures the agent while they run, so the claim that the
OPC UA server never slows the inspection path is a number, not a hope.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_agent.contracts.config import load_config
from edge_agent.opcua.server import application_uri
from trainer.harness.opcua_clients import ClientsProcess, ClientsSpec
from trainer.harness.opcua_run import ClientIdentity, OpcuaProcess
from trainer.harness.station_run import AgentProcess, cpu_seconds

EVENTS_TIMEOUT_S = 60.0


class OpcuaBeside:
    """Called with a started agent: a context in which the server (its own process, the agent's
    state and health port) serves `clients` subscribed clients; on leaving, it waits until every
    client has `boards` events (at most EVENTS_TIMEOUT_S) and keeps what each received, with
    the CPU seconds the server and the clients used while the boards went by (set-up and
    the clients' connections not included)."""

    def __init__(
        self,
        config_path: Path,
        identity: ClientIdentity,
        clients: int,
        boards: int,
        work: Path,
        log_path: Path,
    ) -> None:
        self.config_path, self.identity = config_path, identity
        self.clients, self.boards, self.work, self.log_path = clients, boards, work, log_path
        self.received: dict[str, Any] = {}

    @contextmanager
    def __call__(self, agent: AgentProcess) -> Iterator[OpcuaBeside]:
        self.work.mkdir(parents=True, exist_ok=True)
        config = load_config(self.config_path)
        server = OpcuaProcess(self.config_path, agent.env, self.log_path)
        spec = ClientsSpec(
            url=server.url,
            server_cert=str(server.server_cert),
            identity={k: str(v) for k, v in asdict(self.identity).items()},
            station_ns=application_uri(config),
            camera=next(iter(config.inputs.drop_folders)),
            clients=self.clients,
        )
        readers = ClientsProcess(spec, self.work, agent.env, self.log_path)
        server_from = clients_from = 0.0
        try:
            server.start()
            readers.start()
            server_from, clients_from = cpu_seconds(server.process), cpu_seconds(readers.process)
            yield self
            readers.wait_events(self.boards, EVENTS_TIMEOUT_S)
        finally:
            used = {
                "server": cpu_seconds(server.process) - server_from,
                "clients": cpu_seconds(readers.process) - clients_from,
            }
            self.received = {**readers.stop(), "cpu_s": used}
            server.stop()
