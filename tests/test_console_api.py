"""The console's HTTP API over a journal filled by a real agent run (real broker, real files)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from console_station import (
    CONNECTORS,
    FED_BOARDS,
    OLD_VERSION,
    ROOT,
    Line,
    boards_to_feed,
    built_station,
    start_line,
    stop_line,
)
from mqtt_broker import wait_until
from retrain_station import PREFIX

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.bundle import read_manifest
from edge_agent.contracts.config import load_config
from trainer.retrain.job import STATUS_FILE, ConnectorResult, RunReport
from trainer.retrain.runs import retrain_root

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    """A station whose agent inspected the first test boards, with the console beside it."""
    config = built_station(tmp_path_factory)
    running = start_line(
        config, tmp_path_factory.mktemp("api"), boards_to_feed(config)[:FED_BOARDS]
    )
    yield running
    stop_line(running)


def journal(line: Line, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    state = load_config(line.config).paths.state
    with sqlite3.connect(state / "journal.sqlite") as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, args).fetchall()


def journaled_boards(line: Line) -> list[dict]:
    """Every journaled verdict, newest first (the feed's order)."""
    rows = journal(line, "SELECT verdict_json FROM inspections ORDER BY rowid DESC")
    return [json.loads(row["verdict_json"]) for row in rows]


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_feed_lists_the_agents_boards_newest_first_with_their_not_ok_connectors(line: Line):
    feed = line.client().get_json("/api/feed")["boards"]
    verdicts = journaled_boards(line)

    assert [b["result_id"] for b in feed] == [v["result_id"] for v in verdicts]
    for board, verdict in zip(feed, verdicts, strict=True):
        assert board["part_id"] == verdict["part_id"]
        assert board["evaluation"] == verdict["evaluation"]
        assert board["total_ms"] == verdict["processing_ms"]["total"]
        not_ok = [
            {"id": c["id"], "evaluation": c["evaluation"]}
            for c in verdict["connectors"]
            if c["evaluation"] != "OK"
        ]
        assert board["flagged"] == not_ok
    assert {"OK", "NOK"} <= {b["evaluation"] for b in feed}


def test_feed_filters_by_evaluation_connector_part_id_and_time(line: Line):
    client = line.client()
    verdicts = journaled_boards(line)

    nok = client.get_json("/api/feed?evaluation=NOK")["boards"]
    assert [b["result_id"] for b in nok] == [
        v["result_id"] for v in verdicts if v["evaluation"] == "NOK"
    ]
    j1 = client.get_json("/api/feed?connector=J1")["boards"]
    assert [b["result_id"] for b in j1] == [
        v["result_id"]
        for v in verdicts
        if any(c["id"] == "J1" and c["evaluation"] != "OK" for c in v["connectors"])
    ]
    part = verdicts[-1]["part_id"]
    assert [b["part_id"] for b in client.get_json(f"/api/feed?part_id={part}")["boards"]] == [part]
    assert client.get_json("/api/feed?since=2999-01-01T00:00")["boards"] == []
    middle = verdicts[len(verdicts) // 2]["created_at"]
    since = client.get_json(f"/api/feed?since={middle}")["boards"]
    until = client.get_json(f"/api/feed?until={middle}")["boards"]
    assert [b["result_id"] for b in since] == [
        v["result_id"] for v in verdicts if v["created_at"] >= middle
    ]
    assert [b["result_id"] for b in until] == [
        v["result_id"] for v in verdicts if v["created_at"] < middle
    ]


def test_feed_pages_through_history_without_gaps_or_repeats(line: Line):
    client = line.client()
    seen, page = [], client.get_json("/api/feed?limit=2")
    while True:
        seen += [b["result_id"] for b in page["boards"]]
        if page["older"] is None:
            break
        page = client.get_json(f"/api/feed?limit=2&before={page['older']}")

    assert seen == [v["result_id"] for v in journaled_boards(line)]


def test_feed_refuses_filter_values_it_does_not_know(line: Line):
    client = line.client()

    assert client.get("/api/feed?evaluation=MAYBE")[0] == 422
    status, body, _ = client.get("/api/feed?connector=J99")
    assert status == 422
    assert b"J99" in body
    assert client.get("/api/feed?since=yesterday")[0] == 422


def test_board_view_has_the_aligned_photo_crops_heatmaps_scores_and_models(line: Line):
    client = line.client()
    verdict = next(v for v in journaled_boards(line) if v["evaluation"] == "NOK")
    rid = verdict["result_id"]
    config = load_config(line.config)

    board = client.get_json(f"/api/board/{rid}")
    status, photo, headers = client.get(f"/img/board/{rid}.jpg")

    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert decode(photo).shape[1] == 1280
    for row, truth in zip(board["connectors"], verdict["connectors"], strict=True):
        assert (row["id"], row["evaluation"], row["score"]) == (
            truth["id"],
            truth["evaluation"],
            truth["score"],
        )
        assert row["threshold"] == truth["threshold"] == 1.0
        assert row["model"]["version"] == line.active(row["id"])
        assert row["box"] == list(config.connectors[row["id"]].box)
        crop = decode(client.get(f"/img/crop/{rid}/{row['id']}.png")[1])
        heat = decode(client.get(f"/img/heatmap/{rid}/{row['id']}.png")[1])
        assert crop.shape == heat.shape == (row["box"][3], row["box"][2], 3)
        assert not np.array_equal(crop, heat)
    status, page, _ = client.get(f"/board/{rid}")
    assert status == 200
    assert b'class="box nok"' in page
    flagged = [c["id"] for c in verdict["connectors"] if c["evaluation"] == "NOK"]
    assert [line.split()[0] for line in board["reasons"]] == flagged
    assert all("× its threshold" in line for line in board["reasons"])


def test_an_unreadable_photo_is_an_error_board_explained_in_plain_words(line: Line):
    line.drop.mkdir(parents=True, exist_ok=True)
    (line.drop / ".garbled.png.tmp").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 500)
    (line.drop / ".garbled.png.tmp").rename(line.drop / "garbled.png")
    wait_until(
        lambda: any(v.get("part_id") == "garbled" for v in journaled_boards(line)),
        what="the garbled board's verdict",
    )
    rid = next(v["result_id"] for v in journaled_boards(line) if v["part_id"] == "garbled")
    client = line.client()

    board = client.get_json(f"/api/board/{rid}")
    status, page, _ = client.get(f"/board/{rid}")

    assert board["evaluation"] == "ERROR"
    assert board["reasons"][0].startswith("The photo ")
    assert status == 200
    assert b"Why this board is ERROR" in page
    assert client.get(f"/img/crop/{rid}/J1.png")[0] == 404


def test_confirming_through_the_api_is_journaled_as_the_confirm_command_does(line: Line):
    client = line.client()
    verdicts = journaled_boards(line)
    nok = next(v for v in verdicts if v["evaluation"] == "NOK")
    flagged = next(c["id"] for c in nok["connectors"] if c["evaluation"] == "NOK")
    other = next(v for v in verdicts if v["evaluation"] == "OK")

    status, reply = client.post_json(
        "/api/confirm", {"result_id": nok["result_id"], "connector": flagged, "label": "KO"}
    )
    cli = subprocess.run(
        [
            *(sys.executable, "-m", "edge_agent.cli", "confirm", other["result_id"], "OK"),
            *("--by", "anna", "--config", str(line.config)),
        ],
        env={**line.agent.env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )

    assert status == 200, reply
    assert reply["connectors"] == [flagged]
    rows = journal(
        line,
        "SELECT result_id, connector, label, confirmed_by FROM confirmations ORDER BY id",
    )
    assert [tuple(r) for r in rows[-3:]] == [
        (nok["result_id"], flagged, "KO", "console:operator"),
        *((other["result_id"], c, "OK", "cli:anna") for c in CONNECTORS),
    ], cli.stdout
    queue = client.get_json("/api/review")["items"]
    assert (nok["result_id"], flagged) not in {(i["result_id"], i["connector"]) for i in queue}


def test_a_whole_board_ok_labels_every_scored_connector(line: Line):
    rid = next(v["result_id"] for v in journaled_boards(line) if v["evaluation"] == "NOK")

    status, reply = line.client().post_json("/api/confirm", {"result_id": rid, "label": "OK"})

    assert status == 200
    assert sorted(reply["connectors"]) == list(CONNECTORS)


def test_confirmations_the_journal_would_refuse_are_refused_with_its_reason(line: Line):
    client = line.client()
    rid = journaled_boards(line)[0]["result_id"]
    before = journal(line, "SELECT COUNT(*) FROM confirmations")[0][0]

    status, reply = client.post_json(
        "/api/confirm", {"result_id": rid, "connector": "J7", "label": "OK"}
    )
    assert status == 422
    assert "did not inspect" in reply
    status, _ = client.post_json(
        "/api/confirm", {"result_id": "0" * 26, "connector": "J1", "label": "OK"}
    )
    assert status == 422
    status, reply = client.post_json(
        "/api/confirm", {"result_id": rid, "connector": "J1", "label": "OK"}, token="forged"
    )
    assert status == 403
    assert journal(line, "SELECT COUNT(*) FROM confirmations")[0][0] == before


def test_promote_and_rollback_switch_the_active_model_and_the_agent_announces_it(line: Line):
    client = line.client()
    current = line.active("J3")
    topic = f"{PREFIX}/model/J3"

    status, event = client.post_json("/api/connector/J3/promote", {"version": OLD_VERSION})
    assert status == 200, event
    assert (event["event"], event["previous"], event["by"]) == (
        "promoted",
        current,
        "console:operator",
    )
    assert line.active("J3") == OLD_VERSION
    line.recorder.wait_for(
        lambda ms: any(m.topic == topic and m.json()["version"] == OLD_VERSION for m in ms)
    )

    status, event = client.post_json("/api/connector/J3/rollback", {})
    assert status == 200, event
    assert line.active("J3") == current
    line.recorder.wait_for(
        lambda ms: any(
            m.topic == topic
            and m.json()["version"] == current
            and (m.json().get("last_event") or {}).get("event") == "rolled_back"
            for m in ms
        )
    )
    status, reply = client.post_json("/api/connector/J3/promote", {"version": current})
    assert status == 409
    assert "already active" in reply


def test_connector_view_reports_scores_rates_versions_and_the_last_retrain(line: Line):
    config = load_config(line.config)
    gate = {"summary": "refused: misses 1 of 4 KO in the library", "accepted": False}
    report = RunReport("run-1", "timer", "2026-11-30T02:00:00Z", finished_at="2026-11-30T02:09Z")
    report.results.append(ConnectorResult("J3", "refused", "2026-11-30.9", gate["summary"], gate))
    retrain_root(config).mkdir(parents=True, exist_ok=True)
    write_json_atomic(retrain_root(config) / STATUS_FILE, report.status("idle"))
    scored = [
        c
        for v in journaled_boards(line)
        for c in v["connectors"]
        if c["id"] == "J3" and c["score"] is not None
    ]

    summary = line.client().get_json("/api/connector/J3")

    assert sorted(summary["scores"]) == sorted(c["score"] for c in scored)
    assert sum(h["nok"] for h in summary["hourly"]) == sum(c["evaluation"] == "NOK" for c in scored)
    assert {v["version"] for v in summary["versions"]} >= {OLD_VERSION, line.active("J3")}
    active = next(v for v in summary["versions"] if v["version"] == line.active("J3"))
    manifest = read_manifest(config.paths.models / "J3" / "active")
    assert active["calibration"] == manifest.calibration.mode
    assert active["guarantee"] == manifest.calibration.guarantee
    test = active["test"]
    assert test["n_test_ok"] > 0 and 0.0 <= test["false_reject_rate"] <= 1.0
    assert 0.0 <= test["synthetic_recall"] <= 1.0
    assert summary["state"]["active"] == line.active("J3")
    assert summary["retrain"]["outcome"] == "refused"
    assert summary["retrain"]["reason"] == gate["summary"]


def test_health_combines_the_agents_readiness_with_the_journal(line: Line):
    wait_until(lambda: journal(line, "SELECT COUNT(*) FROM outbox")[0][0] == 0, what="outbox")

    health = line.client().get_json("/api/health")

    agent = health["agent"]
    assert agent["ready"] is True
    assert agent["details"]["mqtt_connected"] is True
    assert agent["models"] == {c: line.active(c) for c in CONNECTORS}
    assert health["journal"]["outbox_depth"] == 0
    assert health["journal"]["boards_last_hour"] == len(journaled_boards(line))
    assert {d["name"] for d in health["disks"]} == {"state", "models"}


@pytest.mark.parametrize(
    "path",
    [
        "/img/board/..%2F..%2Fedge.toml.jpg",
        "/img/crop/01M8PQ9SEF12YSFFDKJAAFHEJ3/..%2F..%2Fedge.toml.png",
        "/static/..%2Fapp.py",
        "/board/..%2Fedge.toml",
    ],
)
def test_request_values_never_name_a_file(line: Line, path: str):
    status, body, _ = line.client().get(path)

    assert status == 404
    assert b"[station]" not in body


def test_a_preview_box_is_checked_before_anything_is_cut(line: Line):
    client = line.client()
    rid = next(v["result_id"] for v in journaled_boards(line) if v["evaluation"] == "OK")

    assert client.get(f"/img/preview/{rid}.png?box=../../etc")[0] == 422
    assert client.get(f"/img/preview/{rid}.png?box=5000,5000,40,40")[0] == 404
    status, data, _ = client.get(f"/img/preview/{rid}.png?box=100,120,64,48")
    assert status == 200
    assert decode(data).shape == (48, 64, 3)


def test_setup_saves_a_valid_layout_and_refuses_an_invalid_one(line: Line):
    client = line.client()
    layout = client.get_json("/api/setup")["connectors"]
    original = line.config.read_text()
    moved = [{**c, "box": [c["box"][0] + 4, *c["box"][1:]]} for c in layout]

    status, reply = client.post_json(
        "/api/setup", {"connectors": [{**layout[0], "box": [0, 0, 5000, 40]}]}
    )
    assert status == 422
    assert "inside the" in reply
    assert line.config.read_text() == original

    status, reply = client.post_json("/api/setup", {"connectors": moved})
    assert status == 200, reply
    saved = load_config(line.config)
    assert [list(saved.connectors[c["id"]].box) for c in moved] == [c["box"] for c in moved]
    assert Path(reply["backup"]).read_text() == original
    assert client.get_json("/api/setup")["connectors"] == moved

    status, reply = client.post_json("/api/setup", {"connectors": layout, "base_sha256": "0" * 64})
    assert status == 409
    assert "changed since this page was loaded" in reply
    assert load_config(line.config).connectors == saved.connectors
