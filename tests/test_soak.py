"""`edge-inspect soak`: its checks catch a lost, doubled or missing verdict, its faults stay out
of each other's way, and a short run with an outage and a kill on a tiny station ends clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from detector_checks import cli
from retrain_station import build_station

from edge_agent.contracts.verdict import new_result_id
from edge_agent.store.journal import Journal
from trainer.benches.soak.checks import check
from trainer.benches.soak.faults import schedule
from trainer.benches.soak.stream import SentInput


def journaled(journal: Journal, part_id: str) -> dict:
    """A verdict for `part_id` as the agent journals it (session and seq stamped)."""
    verdict = {"result_id": new_result_id(), "evaluation": "OK", "part_id": part_id}
    journal.record_inspection(verdict, [], "synth/aoi1/verdict")
    return verdict


def test_checks_count_lost_doubled_and_seq_gaps_but_not_a_redelivery(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start_session()
    first, unheard, double_a, double_b = (journaled(journal, p) for p in ("p1", "p2", "p3", "p3"))
    journal.close()
    sent = [SentInput(p, "drop", float(i)) for i, p in enumerate(("p1", "p2", "p3", "p4"))]
    received = [(10.0, first), (10.5, first), (11.0, double_a), (12.0, double_b)]

    results = check(sent, received, tmp_path / "journal.sqlite", [], 0.0)

    assert not results["passed"]
    assert results["examples"]["lost"] == ["p2", "p4"]
    assert results["examples"]["doubled"] == {
        "p3": {
            "route": "drop",
            "result_ids": sorted([double_a["result_id"], double_b["result_id"]]),
        }
    }
    assert results["verdicts"]["redelivered"] == 1
    (session,) = results["journal"]["sessions"].values()
    assert session["verdict_gaps"] == [unheard["seq"]]
    assert session["journal_gaps"] == []
    assert results["seq_gaps"] == 1
    assert results["journal"]["rows_minus_inputs"] == 0


@pytest.mark.parametrize(("duration", "kills", "outage"), [(300, 5, 60), (60, 2, 15), (10, 1, 2)])
def test_schedule_spreads_the_kills_outside_the_outage(
    duration: float, kills: int, outage: float
) -> None:
    faults = schedule(duration, kills, outage)

    (down,) = [f for f in faults if f.kind == "outage"]
    kill_times = [f.at_s for f in faults if f.kind == "kill"]
    assert down.seconds == outage
    assert len(kill_times) == kills
    assert all(not down.at_s <= at <= down.at_s + outage for at in kill_times)
    assert all(0 < f.at_s < duration for f in faults)


@pytest.mark.slow
def test_a_short_soak_with_an_outage_and_a_kill_loses_and_doubles_nothing(tmp_path: Path) -> None:
    config = build_station(tmp_path / "station", ("J1",), boards=24)
    out = tmp_path / "soak"

    result = cli(
        "soak", "--station", config, "--out", out, "--rate", 4, "--duration", 10,
        "--outage", 2, "--kills", 1, "--progress", 2, "--drain-timeout", 120, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "soak.json").read_text(encoding="utf-8"))
    assert report["inputs"]["sent"] == 40
    assert report["inputs"]["drop"] == report["inputs"]["mqtt"] == 20
    assert (report["lost"], report["doubled"], report["seq_gaps"], report["unexpected"]) == (
        0, 0, 0, 0,
    )  # fmt: skip
    assert report["journal"]["rows"] == 40
    assert len(report["journal"]["sessions"]) == 2  # the kill: a second agent process
    happened = [event["what"] for event in report["events"]]
    for event in ("broker stopped", "broker started", "agent killed", "agent ready", "drained"):
        assert event in happened
    assert report["unexpected_agent_exits"] == 0
    assert (out / "soak.md").read_text(encoding="utf-8").startswith("# Soak run")
    assert "streaming: sent" in result.stdout  # progress lines, not a terminal
