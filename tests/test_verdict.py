"""The inspect.verdict/1 payload, the board evaluation rule, and ULID result ids."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest

from edge_agent.contracts.verdict import (
    ConnectorOutcome,
    Failure,
    board_evaluation,
    build_verdict,
    new_result_id,
    result_id_ms,
)

MODEL = {"version": "2026-08-31.1", "sha256": "c0de" * 16}
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def verdict_of(connectors: list[ConnectorOutcome], failure: Failure | None = None) -> dict:
    return build_verdict(
        result_id=new_result_id(),
        station="line3/aoi2",
        camera="cam1",
        part_id="SN000123",
        source_uri="file:///srv/drop/cam1/SN000123.png",
        source_sha256="ab12" * 16,
        captured_at="2026-09-01T10:15:00.123Z",
        processing_ms={"decode": 9.4, "align": 4.2, "infer": 21.0, "total": 38.3},
        connectors=connectors,
        failure=failure,
    )


def missing_model(connector: str) -> ConnectorOutcome:
    return ConnectorOutcome(connector, "ERROR", None, None, None, reason="no model loaded")


def test_verdict_has_exactly_the_schema_keys() -> None:
    nok = ConnectorOutcome.scored("J2", 3.7, 1.0, MODEL)
    connectors = [
        ConnectorOutcome.scored("J1", 0.41, 1.0, MODEL),
        replace(nok, heatmap_topic="plant/line3/aoi2/heatmap/X/J2"),
    ]

    verdict = json.loads(json.dumps(verdict_of(connectors)))

    assert set(verdict) == {
        "schema",
        "result_id",
        "part_id",
        "camera",
        "station",
        "source",
        "captured_at",
        "created_at",
        "processing_ms",
        "evaluation",
        "historical",
        "connectors",
    }
    assert verdict["schema"] == "inspect.verdict/1"
    assert ULID_RE.match(verdict["result_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", verdict["created_at"])
    assert verdict["processing_ms"] == {"decode": 9, "align": 4, "infer": 21, "total": 38}
    assert verdict["historical"] is False
    assert verdict["evaluation"] == "NOK"
    assert verdict["connectors"] == [
        {"id": "J1", "evaluation": "OK", "score": 0.41, "threshold": 1.0, "model": MODEL},
        {
            "id": "J2",
            "evaluation": "NOK",
            "score": 3.7,
            "threshold": 1.0,
            "model": MODEL,
            "heatmap_topic": "plant/line3/aoi2/heatmap/X/J2",
        },
    ]


def test_failed_stage_adds_the_error_and_is_never_ok() -> None:
    verdict = verdict_of([], Failure("align", "only 3 plausible matches", "NOT_DECIDABLE"))

    assert verdict["evaluation"] == "NOT_DECIDABLE"
    assert verdict["error"] == {"stage": "align", "message": "only 3 plausible matches"}


def test_failure_after_ok_scores_still_is_not_ok() -> None:
    ok = ConnectorOutcome.scored("J1", 0.2, 1.0, MODEL)

    verdict = verdict_of([ok], Failure("heatmap", "unexpected error: boom"))

    assert verdict["evaluation"] == "ERROR"


@pytest.mark.parametrize(
    ("evaluations", "board"),
    [
        (["OK", "OK"], "OK"),
        (["OK", "NOK"], "NOK"),
        (["NOK", "ERROR", "NOT_DECIDABLE"], "NOK"),
        (["OK", "ERROR"], "ERROR"),
        (["OK", "NOT_DECIDABLE"], "NOT_DECIDABLE"),
        (["NOT_DECIDABLE", "ERROR", "OK"], "ERROR"),
        ([], "ERROR"),
    ],
)
def test_board_evaluation_rule(evaluations: list[str], board: str) -> None:
    assert board_evaluation(evaluations) == board


def test_board_with_a_missing_model_is_never_ok() -> None:
    scored = [ConnectorOutcome.scored(c, 0.1, 1.0, MODEL) for c in ("J1", "J2")]

    verdict = verdict_of([*scored, missing_model("J3")])

    assert verdict["evaluation"] == "ERROR"
    assert verdict["connectors"][2] == {
        "id": "J3",
        "evaluation": "ERROR",
        "score": None,
        "threshold": None,
        "model": None,
        "reason": "no model loaded",
    }


def test_missing_model_does_not_hide_a_nok() -> None:
    verdict = verdict_of([ConnectorOutcome.scored("J1", 2.0, 1.0, MODEL), missing_model("J2")])

    assert verdict["evaluation"] == "NOK"


@pytest.mark.parametrize(
    ("score", "evaluation"),
    [(0.999, "OK"), (1.0, "NOK"), (5.0, "NOK"), (float("nan"), "ERROR"), (float("inf"), "ERROR")],
)
def test_connector_evaluation_from_its_score(score: float, evaluation: str) -> None:
    outcome = ConnectorOutcome.scored("J1", score, 1.0, MODEL)

    assert outcome.evaluation == evaluation
    assert verdict_of([outcome])["evaluation"] == evaluation


def test_result_id_is_a_ulid_with_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    result_id = new_result_id()
    after = time.time_ns() // 1_000_000

    assert ULID_RE.match(result_id)
    timestamp = 0
    for char in result_id[:10]:
        timestamp = timestamp * 32 + CROCKFORD.index(char)
    assert before <= timestamp <= after
    assert result_id_ms(result_id) == timestamp


@pytest.mark.parametrize("bad", ["", "r1", "01J9Z6Q8M3K4T2", "01J9Z6Q8M3K4T2ABCDEFGHJK_U"])
def test_a_result_id_that_is_no_ulid_has_no_time(bad: str) -> None:
    with pytest.raises(ValueError, match="not a ULID"):
        result_id_ms(bad)


def test_result_ids_sort_in_creation_order() -> None:
    ids = [new_result_id() for _ in range(2000)]
    time.sleep(0.002)
    later = new_result_id()

    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    assert later > ids[-1]
    assert later[:10] > ids[0][:10]
