"""Fuzzing the `<prefix>/confirm` payload (hypothesis) through the agent's own handler.

Arbitrary bytes, arbitrary JSON and confirmation-shaped objects with wrong, missing, extra and
strange values (lone surrogates, huge, deeply nested): the handler never raises; it replies
once, either ok with the connectors it labelled (journaled) or with an error that names the
confirmation's problem, and then the journal's confirmations are unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import pytest
from fuzz_station import (
    CONNECTOR,
    JSON,
    RecordingLink,
    inspect_file,
    make_agent,
    request_properties,
)
from fuzz_station import table_rows as rows_of
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from test_pipeline import BOXES, photograph, textured_reference

from edge_agent.daemon import Agent
from edge_agent.store.journal import LABELS

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Station:
    agent: Agent
    verdicts: dict[str, dict]

    def __repr__(self) -> str:
        return "Station(...)"


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """The agent with three journaled boards (OK, NOK, ERROR) and its link recording replies."""
    root = tmp_path_factory.mktemp("fuzz-confirm")
    agent = make_agent(root)
    painted = textured_reference()
    x, y, w, h = BOXES[CONNECTOR]
    cv2.rectangle(painted, (x + 8, y + 8), (x + w - 8, y + h - 8), (255, 255, 255), -1)
    drop = root / "drop" / "cam1"
    drop.mkdir(parents=True)
    boards = {"ok": photograph(textured_reference()), "nok": photograph(painted), "bad": b"x"}
    verdicts = {}
    for name, data in boards.items():
        (drop / f"{name}.png").write_bytes(data)
        verdicts[name] = inspect_file(agent, drop / f"{name}.png")
    assert [v["evaluation"] for v in verdicts.values()] == ["OK", "NOK", "ERROR"]
    agent.link = RecordingLink(agent, agent.feedback.handlers())
    agent.feedback.link = agent.link
    yield Station(agent, verdicts)
    agent.journal.close()


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
STRANGE = st.one_of(
    st.text(max_size=12),
    st.text(st.one_of(st.characters(), SURROGATES), min_size=1, max_size=6),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just("x" * 300),
)


@st.composite
def confirmation_objects(draw: st.DrawFn, result_ids: list[str]) -> dict[str, Any]:
    """Mostly well-formed confirmations (valid values weigh double); each key at times missing or
    strange, at times an extra key."""
    fields = {
        "result_id": st.sampled_from(result_ids),
        "connector": st.sampled_from([None, CONNECTOR, None, CONNECTOR, "J2", "j1", "J1\n"]),
        "label": st.sampled_from(["OK", "KO", "OK", "KO", "ok", "ko", "NOK"]),
        "by": st.sampled_from(["mes", "operator 7", "mes", "operator 7", " ", ""]),
        "at": st.sampled_from([None, "2026-03-01T10:00:00Z", None, "2026-03-01", "yesterday"]),
    }
    data = {}
    for key, values in fields.items():
        roll = draw(st.integers(0, 11))
        if roll > 0:
            data[key] = draw(STRANGE if roll == 1 else values)
    if draw(st.integers(0, 11)) == 0:
        data[draw(st.text(max_size=6))] = draw(JSON)
    return data


def payloads(result_ids: list[str]) -> st.SearchStrategy[bytes]:
    """Bytes, any JSON, confirmation-shaped objects (some with lone surrogates escaped)."""
    return st.one_of(
        st.binary(max_size=64),
        JSON.map(lambda value: json.dumps(value).encode()),
        confirmation_objects(result_ids).map(lambda data: json.dumps(data).encode()),
        confirmation_objects(result_ids).map(lambda data: json.dumps(data).encode()),
    )


@settings(FUZZ, max_examples=1500)
@given(data=st.data())
@example(data=None)
def test_any_confirm_payload_is_journaled_or_refused_naming_the_problem(
    station: Station, data: st.DataObject | None
) -> None:
    agent = station.agent
    result_ids = [verdict["result_id"] for verdict in station.verdicts.values()]
    deep = b'{"result_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    payload = deep if data is None else data.draw(payloads(result_ids), label="payload")
    handler = agent.feedback.handlers()["confirm"]
    before = rows_of(agent, "confirmations")
    replies = len(agent.link.replies)

    handler(f"{agent.config.mqtt.prefix}/confirm", payload, request_properties())

    after = rows_of(agent, "confirmations")
    assert len(agent.link.replies) == replies + 1
    reply = agent.link.replies[-1]
    event(f"ok={reply['ok']}")
    if reply["ok"]:
        assert reply["label"] in LABELS and reply["result_id"] in result_ids
        assert reply["connectors"] == [CONNECTOR]
        added = after[len(before) :]
        assert after[: len(before)] == before and len(added) == 1
        assert added[0][1:4] == (reply["result_id"], CONNECTOR, reply["label"])
    else:
        assert after == before
        assert isinstance(reply["error"], str)
        assert re.match(r"confirmation|result '", reply["error"]), reply["error"]
