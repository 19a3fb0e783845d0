"""Fuzzing `<prefix>/cmd/<name>` (hypothesis) through the agent's own command handler.

Any command name the link lets through and any payload (bytes, JSON, command-shaped objects
with wrong, missing and strange values): the handler never raises and replies once, either
ok with the action done (the active model switched and loaded) or with an error that names
the problem, and then the connector's lifecycle (links and history) is unchanged. A reload's
payload is a layout request (`{"install"?, "by"?}`): anything else is refused, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_station import CONNECTOR, JSON, VERSIONS, RecordingLink, make_agent, request_properties
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from edge_agent.contracts.bundle import ACTIVE_LINK
from edge_agent.daemon import Agent
from edge_agent.feedback import lifecycle

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
OTHER_NAMES = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789_-", min_size=1, max_size=12)
NAMES = st.sampled_from(["reload", "promote", "promote", "rollback", "rollback", ""]).flatmap(
    lambda name: st.just(name) if name else OTHER_NAMES
)
STRANGE = st.one_of(
    st.text(max_size=10),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def command_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed requests (valid values weigh more); each key at times missing or
    strange."""
    fields = {
        "connector": st.sampled_from([CONNECTOR] * 4 + ["J2", "../J1", ""]),
        "version": st.sampled_from([None, None, *VERSIONS, "2026-01-03.1", "../../etc", "active"]),
        "by": st.sampled_from(["mes", "operator 7", ""]),
    }
    data = {}
    for key, values in fields.items():
        roll = draw(st.integers(0, 11))
        if roll > 0:
            data[key] = draw(STRANGE if roll == 1 else values)
    return data


PAYLOADS = st.one_of(
    st.binary(max_size=48),
    JSON.map(lambda value: json.dumps(value).encode()),
    command_objects().map(lambda data: json.dumps(data).encode()),
    command_objects().map(lambda data: json.dumps(data).encode()),
)


def lifecycle_files(models: Path) -> tuple:
    """What a refused command must leave as it was: the links and the history."""
    history = models / CONNECTOR / lifecycle.HISTORY_FILE
    return (
        lifecycle.link_target(models, CONNECTOR, ACTIVE_LINK),
        lifecycle.link_target(models, CONNECTOR, lifecycle.CANDIDATE_LINK),
        history.read_bytes() if history.exists() else None,
    )


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    agent = make_agent(tmp_path_factory.mktemp("fuzz-commands"))
    agent.link = RecordingLink(agent, {"cmd/+": agent._on_command})
    yield agent
    agent.journal.close()


@settings(FUZZ, max_examples=1000)
@given(name=NAMES, payload=PAYLOADS)
@example(name="promote", payload=b"[" * 100_000)
@example(name="promote", payload=b'{"connector": "J1", "version": 0}')
@example(name="promote", payload=b'{"connector": "J1", "version": ""}')
def test_any_command_is_done_or_refused_naming_the_problem(
    agent: Agent, name: str, payload: bytes
) -> None:
    models = agent.config.paths.models
    before = lifecycle_files(models)
    replies = len(agent.link.replies)

    agent._on_command(f"cmd/{name}", payload, request_properties())
    agent.loader.submit(lambda: None).result(timeout=30)  # commands run in order on the loader

    assert len(agent.link.replies) == replies + 1
    reply = agent.link.replies[-1]
    assert reply["command"] == name and isinstance(reply["ok"], bool)
    event(f"{name if name in ('reload', 'promote', 'rollback') else 'other'} ok={reply['ok']}")
    after = lifecycle_files(models)
    # Whatever happened, the agent now scores with the model the `active` link names.
    assert agent.registry.versions()[CONNECTOR]["version"] == after[0]
    if name == "reload":
        # Nothing to reload; a payload that is not a reload request (`{"install"?, "by"?}`)
        # is refused naming the problem. This agent has no config file to re-read.
        assert after == before and reply["changes"] == []
        layout = reply.get("layout")
        assert reply["ok"] == (layout is None)
        if layout is not None:
            assert not layout["ok"]
            assert layout["error"].startswith(
                ("the command payload", "install ", "the agent was started without a config file")
            ), layout["error"]
    elif reply["ok"]:
        assert reply["connector"] == CONNECTOR and after[0] == reply["version"] != before[0]
        asked = json.loads(payload).get("version")
        assert name != "promote" or asked is None or asked == reply["version"]
    else:
        assert after == before
        error = reply["error"]
        assert isinstance(error, str)
        assert error.startswith(
            ("unknown command", "the command payload", "connector ", "version ", f"{CONNECTOR}: ")
        ), error
