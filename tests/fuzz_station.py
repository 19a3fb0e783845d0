"""A small real station for the fuzz tests, and an agent on it that is built but not started.

The reference and connector J1 are the pipeline tests' (so the exported model is shared with
them); J1 has two installed versions, the older one active, the newer one a candidate. The fuzz
tests call the agent's own handlers directly, so every exception would reach the test.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st
from onnx_fixtures import install_template_model
from test_pipeline import BOXES, MAP_SIZE, RAW_THRESHOLD, textured_reference

from edge_agent.boards import BoardWork
from edge_agent.comms.mqtt_link import MessageProperties, MqttLink
from edge_agent.contracts.config import load_config
from edge_agent.daemon import Agent
from edge_agent.feedback import lifecycle
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inspect.imaging import encode_png
from edge_agent.store.journal import compact_json

PREFIX = "plant/fuzz/aoi"
CAMERA = "cam1"
CONNECTOR = "J1"
VERSIONS = ("2026-01-01.1", "2026-01-02.1")


def make_station(root: Path, max_payload_bytes: int = 20_000_000) -> Path:
    """Reference, J1's model in two versions (older active, newer candidate), the config."""
    reference = textured_reference()
    (root / "reference.png").write_bytes(encode_png(reference))
    x, y, w, h = BOXES[CONNECTOR]
    template = reference[y : y + h, x : x + w].astype(np.float32)
    models = root / "models"
    for version in VERSIONS:
        install_template_model(
            models, CONNECTOR, version, template, MAP_SIZE, RAW_THRESHOLD,
            make_active=version == VERSIONS[0],
        )  # fmt: skip
    lifecycle.set_candidate(models, CONNECTOR, VERSIONS[1], by="fuzz")
    lines = [
        "[station]", 'reference_image = "reference.png"', f'camera = "{CAMERA}"',
        "[inputs]", f'drop_folders = {{ {CAMERA} = "drop/{CAMERA}" }}',
        "[limits]", f"max_payload_bytes = {max_payload_bytes}",
        "[mqtt]", f'prefix = "{PREFIX}"',
        "[health]", "enabled = false",
        "[retention]", "keep_crops = false",
        f"[connectors.{CONNECTOR}]", f"box = {list(BOXES[CONNECTOR])}",
    ]  # fmt: skip
    path = root / "station.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_agent(root: Path, max_payload_bytes: int = 20_000_000) -> Agent:
    """The agent of a fresh station under `root`, its models loaded; not started."""
    agent = Agent(load_config(make_station(root, max_payload_bytes)))
    assert agent.registry.load_all() == {}
    return agent


def inspect_file(agent: Agent, path: Path, camera: str = CAMERA, spooled: bool = False) -> dict:
    """Hand one input file to the agent as its watcher would; its journaled verdict."""
    data = path.read_bytes()
    drop = DropFile(camera, path, hashlib.sha256(data).hexdigest(), data)
    agent.boards.handle(BoardWork(drop, spooled, arrival=0))
    with sqlite3.connect(agent.journal.path) as db:
        rows = db.execute(
            "SELECT verdict_json FROM inspections WHERE source_path = ?", (str(path),)
        ).fetchall()
    assert len(rows) == 1, f"{path}: {len(rows)} journal rows"
    return json.loads(rows[0][0])


def table_rows(agent: Agent, table: str) -> list[tuple]:
    """Every row of a journal table, as written."""
    with sqlite3.connect(agent.journal.path) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


class RecordingLink(MqttLink):
    """The agent's real MQTT link, never connected, keeping what it was asked to reply."""

    def __init__(self, agent: Agent, handlers: dict) -> None:
        super().__init__(
            agent.config.mqtt,
            agent.journal,
            node="fuzz",
            session=agent.session,
            birth=lambda: {},
            handlers=handlers,
            max_payload_bytes=4 * agent.config.limits.max_payload_bytes,
            refused=agent.telemetry.mqtt_refused,
        )
        self.replies: list[dict[str, Any]] = []

    def reply(self, properties: MessageProperties, payload: dict[str, Any]) -> None:
        compact_json(payload)  # what the real reply sends: must encode
        self.replies.append(payload)
        super().reply(properties, payload)


def request_properties() -> MessageProperties:
    """A request's properties with a reply address, as an MES sends them."""
    return MessageProperties([("by", "mes")], response_topic="mes/replies", correlation_data=b"1")


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
"""Any JSON value, small: what the payload fuzz tests nest into their objects."""
