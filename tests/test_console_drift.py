"""Drift in the console: the connector page's drift section over a real journal (a real console
process), and the banner of every page in Chromium with alarms and warnings apart."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_station import ConsoleProcess, HttpClient, env_without_auth
from drift_journal import DriftJournal, at, drop_drift_tables

from edge_agent.contracts.config import HealthSettings
from edge_agent.ops.health import HealthServer
from edge_agent.ops.telemetry import Telemetry

REASON = "J3 scores: median 0.81, reference 0.55, 120 boards"
CAPTURE = "capture: brightness 0.70 x reference over 40 boards: light changed"
READYZ_DRIFT = {  # the /readyz body's `drift` mapping, as the contract shapes it
    "capture": {
        "state": "alarm",
        "reason": CAPTURE,
        "since": at(9),
        "measure": "brightness",
        "statistic": 1.3,
    },
    "J3": {"state": "warning", "reason": REASON, "since": at(8), "measure": "scores_up",
           "statistic": 0.9},
    "J1": {"state": "ok", "reason": "J1 scores within the reference", "since": at(0),
           "measure": None, "statistic": 0.1},
}  # fmt: skip


@pytest.fixture
def health() -> Iterator[HealthServer]:
    """A health server answering ready, with READYZ_DRIFT in its body."""
    server = HealthServer(
        HealthSettings(host="127.0.0.1", port=0),
        heartbeat=lambda: True,
        readiness=lambda: (True, {"reasons": [], "drift": READYZ_DRIFT}),
        telemetry=Telemetry(),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def station(tmp_path: Path, health: HealthServer) -> Iterator[tuple[DriftJournal, HttpClient]]:
    """A station config with J1 and J3, its journal, and a console process reading it."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[station]\nname = "test/drift"\n[health]\nport = {health.port}\n'
        "[connectors.J1]\nbox = [0, 0, 32, 24]\n[connectors.J3]\nbox = [40, 0, 32, 24]\n",
        encoding="utf-8",
    )
    line = DriftJournal(tmp_path / "state")
    console = ConsoleProcess(config, env_without_auth(), tmp_path / "console.log")
    yield line, HttpClient(console.url)
    console.stop()
    line.close()


def page(client: HttpClient, path: str) -> str:
    status, body, _ = client.get(path)
    assert status == 200, (path, status, body[:500])
    return body.decode("utf-8")


def test_the_connector_page_shows_its_drift_state_and_statistic_over_time(station) -> None:
    line, client = station
    history = [(at(i), 0.1 * i, "ok") for i in range(8)]
    history += [(at(8), 0.85, "warning"), (at(9), 1.05, "alarm"), (at(10), 1.2, "alarm")]
    line.history("J3", history)
    line.drift("J3", "alarm", at(9), REASON, detail=json.dumps({"warning_level": 0.83}))
    line.drift("capture", "warning", at(9), "capture: brightness 0.80 x reference, 40 boards")

    html = page(client, "/connector/J3")
    summary = client.get_json("/api/connector/J3")["drift"]

    section = html[html.index('id="drift"') :]
    assert REASON in section and "since 2026-12-06 08:09:00 UTC" in section
    assert "capture warning" in section and "brightness 0.80 x reference" in section
    chart = summary["chart"]
    points = [tuple(map(float, p.split(","))) for p in chart["line"].split()]
    assert len(points) == len(history) == chart["rows"]
    assert [x for x, _ in points] == sorted(x for x, _ in points)  # by time, left to right
    heights = [y for _, y in points]  # SVG y grows downwards: the highest statistic is topmost
    assert heights.index(min(heights)) == len(history) - 1
    assert max(y for _, y in points[:8]) > chart["warning_y"] > chart["alarm_y"]
    assert [(c["state"], c["at"]) for c in chart["changes"]] == [
        ("warning", at(8)),
        ("alarm", at(9)),
    ]
    stretches = [(g["state"], len(g["points"].split())) for g in chart["segments"]]
    assert stretches == [("ok", 8), ("warning", 2), ("alarm", 3)]  # each joined to the last
    svg = re.search(r'<svg class="chart drift-chart".*?</svg>', section, re.S)
    assert svg is not None
    assert svg.group(0).count('class="change ') == 2
    assert 'class="alarm-level"' in svg.group(0) and 'class="warning-level"' in svg.group(0)
    assert summary["state"]["state"] == "alarm" and summary["state"]["since"] == at(9)

    listed = re.findall(r'<td class="drift-state">(.*?)</td>', page(client, "/connectors"))
    assert [re.sub(r"<[^>]+>", "", cell) for cell in listed] == ["—", "alarm"]  # J1, J3
    assert f'title="{REASON}"' in listed[1]


def test_a_journal_without_drift_data_says_so_on_the_connector_page(station) -> None:
    line, client = station
    line.board(0, {"J1": 0.2, "J3": 0.3})
    assert "No drift data yet" in page(client, "/connector/J3")  # tables there, no rows

    drop_drift_tables(line.path)  # an older journal: no drift tables at all
    html = page(client, "/connector/J1")
    assert "No drift data yet" in html
    assert client.get_json("/api/connector/J1")["drift"] is None


def test_the_review_page_puts_the_alarmed_connectors_crops_first_marked_drift(station) -> None:
    line, client = station
    nok = line.board(1, {"J1": 1.5, "J3": 0.2})
    drifted = [line.board(10 + i, {"J1": 0.2, "J3": 0.3}) for i in range(3)]
    line.drift("J3", "alarm", at(10), REASON)

    queue = client.get_json("/api/review")

    listed = [(i["result_id"], i["connector"], i["drift"]) for i in queue["items"]]
    assert listed == [(r, "J3", True) for r in reversed(drifted)] + [(nok, "J1", False)]
    assert 'id="r-drift"' in page(client, "/review")


def test_with_drift_off_an_alarm_left_in_the_journal_heads_no_review(station, tmp_path) -> None:
    line, _ = station
    nok = line.board(1, {"J1": 1.5, "J3": 0.2})
    line.board(10, {"J1": 0.2, "J3": 0.3})
    line.drift("J3", "alarm", at(5), REASON)
    off = {**env_without_auth(), "EDGE_INSPECT_DRIFT__ENABLED": "false"}
    console = ConsoleProcess(tmp_path / "config.toml", off, tmp_path / "console-off.log")
    try:
        queue = HttpClient(console.url).get_json("/api/review")
    finally:
        console.stop()
    assert [(i["result_id"], i["connector"], i["drift"]) for i in queue["items"]] == [
        (nok, "J1", False)
    ]


def test_every_page_banner_shows_drift_alarms_and_warnings_apart_in_chromium(
    station, browser: Any, tmp_path: Path
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    line, client = station
    line.history("J3", [(at(i), 0.12 * i, "ok" if i < 8 else "warning") for i in range(10)])
    line.drift("J3", "warning", at(8), REASON, detail=json.dumps({"warning_level": 0.83}))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=client.base)
    errors: list[str] = []
    try:
        for path in ("/", "/review", "/connector/J3"):
            shown = context.new_page()
            shown.on("pageerror", lambda error: errors.append(str(error)))
            shown.goto(path)
            alarm = shown.locator("#agent-banner > div.drift.alarm")
            warning = shown.locator("#agent-banner > div.drift.warning")
            expect(alarm).to_contain_text("Drift alarm", timeout=5000)
            expect(alarm).to_contain_text(f"{CAPTURE} · since 2026-12-06 08:09:00 UTC")
            expect(warning).to_contain_text("Drift warning")
            expect(warning).to_contain_text(f"{REASON} · since 2026-12-06 08:08:00 UTC")
            assert "J1" not in shown.locator("#agent-banner").inner_text()  # ok: not listed
            colours = [
                part.evaluate("e => getComputedStyle(e).backgroundColor")
                for part in (alarm, warning)
            ]
            assert colours[0] != colours[1]
        shown.screenshot(path=str(tmp_path / "connector-drift.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors


def test_the_review_page_marks_the_drift_heads_crops_in_chromium(station, browser: Any) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    line, client = station
    nok = line.board(1, {"J1": 1.5, "J3": 0.2})
    drifted = line.board(10, {"J1": 0.2, "J3": 0.3})
    line.drift("J3", "alarm", at(5), REASON)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=client.base)
    try:
        shown = context.new_page()
        shown.goto("/review")
        expect(shown.locator("#r-conn")).to_have_text("J3")
        expect(shown.locator("#r-board")).to_have_attribute("href", f"/board/{drifted}#c-J3")
        expect(shown.locator("#r-drift")).to_be_visible()
        shown.locator("#b-skip").click()
        expect(shown.locator("#r-board")).to_have_attribute("href", f"/board/{nok}#c-J1")
        expect(shown.locator("#r-drift")).to_be_hidden()
    finally:
        context.close()
