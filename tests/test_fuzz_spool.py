"""Fuzzing the MQTT image envelope (hypothesis) from paho's callback to the verdict.

Messages with arbitrary topics (non-UTF-8 too), payloads (raw bytes, the board photo, JSON
envelopes with strange part ids and base64), user properties and sizes go through the link's
`on_message` (what paho calls) into the agent's spool: each one is either spooled (then
inspected by the agent into exactly one journaled verdict, OK only for the real photo) or
refused and counted under its reason; no handler ever fails.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fuzz_station import CAMERA, PREFIX, RecordingLink, inspect_file, make_agent
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_pipeline import photograph, textured_reference

from edge_agent.contracts.verdict import OK, safe_part_id
from edge_agent.daemon import Agent

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_PAYLOAD = 300_000  # the link refuses above 4x: 1.2 MB
REFUSALS = ("unknown_camera", "too_large", "bad_topic", "unexpected_topic", "handler_failed")
PHOTO = photograph(textured_reference())
assert len(PHOTO) <= MAX_PAYLOAD


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """The agent with its inbox folders made and its link wired as `start` wires it."""
    agent = make_agent(tmp_path_factory.mktemp("fuzz-spool"), max_payload_bytes=MAX_PAYLOAD)
    agent.spool.folders()
    handlers = {"image/+": agent._on_image, "cmd/+": agent._on_command}
    agent.link = RecordingLink(agent, {**handlers, **agent.feedback.handlers()})
    yield agent
    agent.journal.close()


def refusals(agent: Agent) -> dict[str, float]:
    sample = agent.telemetry.registry.get_sample_value
    return {
        reason: sample("edge_inspect_mqtt_refused_total", {"reason": reason}) or 0.0
        for reason in REFUSALS
    }


def inbox_files(agent: Agent) -> set[Path]:
    """Spooled files waiting in any camera's inbox (not yet filed by a verdict)."""
    return {p for p in agent.spool.inbox.glob("*/*") if p.is_file()}


CAMERAS = st.sampled_from([CAMERA] * 8 + ["cam2", "Cam1", "cam1 ", "+", "#", "", None]).flatmap(
    lambda camera: st.text(max_size=10) if camera is None else st.just(camera)
)
IMAGE_TOPICS = CAMERAS.map(lambda camera: f"{PREFIX}/image/{camera}".encode())
OTHER_TOPICS = st.one_of(
    st.sampled_from([f"{PREFIX}/image", f"{PREFIX}/image/cam1/x", "image/cam1", PREFIX]).map(
        str.encode
    ),
    st.text(max_size=40).map(str.encode),
    st.binary(max_size=40),
)
TOPICS = st.integers(0, 3).flatmap(lambda n: OTHER_TOPICS if n == 0 else IMAGE_TOPICS)
TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["SN-0001", "../../etc/passwd", "a/b", " ", "x" * 300, "\x00", "@@"]),
)
USER_PROPERTIES = st.lists(
    st.tuples(st.one_of(st.sampled_from(["part_id", "captured_at", "camera"]), TEXT), TEXT),
    max_size=3,
)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A JSON envelope: base64 image (the photo, garbage or not base64) and a part id."""
    image = draw(
        st.one_of(
            st.just(base64.b64encode(PHOTO).decode()),
            st.binary(max_size=64).map(lambda data: base64.b64encode(data).decode()),
            st.text(max_size=16),
            st.integers(),
            st.none(),
        )
    )
    data = {"image": image, "part_id": draw(st.one_of(TEXT, st.integers(), st.none()))}
    for key in draw(st.lists(st.sampled_from(["image", "part_id"]), max_size=1)):
        del data[key]
    return json.dumps(data).encode()


PAYLOADS = st.one_of(
    st.binary(max_size=256),
    st.just(PHOTO),
    envelopes(),
    envelopes(),
    st.sampled_from([b"", b"{", b"{}", b"[]", b"\xff" * (4 * MAX_PAYLOAD + 1)]),
)


def message(topic: bytes, payload: bytes, user: list[tuple[str, str]]) -> mqtt.MQTTMessage:
    """A QoS 1 message as paho hands it to `on_message`."""
    msg = mqtt.MQTTMessage(mid=1, topic=topic)
    msg.payload, msg.qos = payload, 1
    msg.properties = Properties(PacketTypes.PUBLISH)
    if user:
        msg.properties.UserProperty = user
    return msg


@settings(FUZZ, max_examples=700)
@given(topic=TOPICS, payload=PAYLOADS, user=USER_PROPERTIES)
def test_any_image_message_is_spooled_and_inspected_or_refused_and_counted(
    agent: Agent, topic: bytes, payload: bytes, user: list[tuple[str, str]]
) -> None:
    before, waiting = refusals(agent), inbox_files(agent)

    agent.link._on_message(agent.link._client, None, message(topic, payload, user))

    counted = {r: n - before[r] for r, n in refusals(agent).items() if n != before[r]}
    spooled = inbox_files(agent) - waiting
    assert "handler_failed" not in counted
    if spooled:
        event("spooled")
        assert not counted and len(spooled) == 1
        (path,) = spooled
        assert topic.decode() == f"{PREFIX}/image/{path.parent.name}"
        verdict = inspect_file(agent, path, path.parent.name, spooled=True)
        assert not path.exists()  # filed once its verdict is journaled
        assert verdict["evaluation"] != OK or PHOTO in (payload, _image_of(payload))
        assert verdict["part_id"] == _expected_part_id(payload, dict(user))
    elif counted:
        event(f"refused: {sorted(counted)}")
        assert list(counted.values()) == [1.0]
    else:  # a command or confirmation topic: answered by its own handler
        event("other handler")
        suffix = topic.decode().removeprefix(f"{PREFIX}/")
        assert suffix == "confirm" or suffix.startswith("cmd/"), topic


def _image_of(payload: bytes) -> bytes | None:
    try:
        return base64.b64decode(json.loads(payload)["image"], validate=True)
    except (ValueError, KeyError, TypeError):
        return None


def _expected_part_id(payload: bytes, user: dict[str, str]) -> str | None:
    """The envelope's part id, else the user property's (made safe), as the spool reads them."""
    try:
        envelope = json.loads(payload) if payload[:1] == b"{" else {}
    except ValueError:
        envelope = {}
    from_envelope = safe_part_id(envelope.get("part_id")) if isinstance(envelope, dict) else None
    return from_envelope or safe_part_id(user.get("part_id"))
