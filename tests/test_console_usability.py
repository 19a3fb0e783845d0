"""What a person meets in the console, in a real browser (Debian's chromium driven by Playwright)
beside a real agent: undo in review, a phone's width, the connector page during and after a
retrain, operator names, re-shot boards, the board page's explanations, the feed's rows and
links, and the address the console prints.

Screenshots go to $CONSOLE_SCREENSHOTS, else to the test's temporary folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from console_station import (
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

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.config import load_config
from trainer.demo.local_broker import free_port
from trainer.demo.station_run import Board, drop_board
from trainer.retrain.job import STATUS_FILE, ConnectorResult, RunReport
from trainer.retrain.runs import retrain_root

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
PHONE = {"width": 390, "height": 844}
RESHOT = "RESHOT-0001"
SHIFTED = "SHIFTED-0001"


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    """The agent has inspected a few boards, one of them photographed twice, and a damaged file."""
    config = built_station(tmp_path_factory)
    boards = boards_to_feed(config)
    running = start_line(config, tmp_path_factory.mktemp("usability"), boards[:FED_BOARDS])
    running.feed(boards[0], f"{RESHOT}.png")
    running.drop.joinpath(".garbled.png.tmp").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 500)
    running.drop.joinpath(".garbled.png.tmp").rename(running.drop / "garbled.png")
    wait_until(lambda: board_of(running, "garbled") is not None, what="the garbled board")
    running.feed(shifted_down(boards[-1].image, running.config.parent / f"{SHIFTED}.png"))
    yield running
    stop_line(running)


def shifted_down(image: Path, out: Path, pixels: int = 160) -> Board:
    """The board photographed lower in the frame: the bottom connector (J1) leaves the photo."""
    photo = cv2.imread(str(image), cv2.IMREAD_COLOR)
    height, width = photo.shape[:2]
    moved = cv2.warpAffine(photo, np.float32([[1, 0, 0], [0, 1, pixels]]), (width, height))
    cv2.imwrite(str(out), moved)
    return Board(out, "test", {}, {})


def opened(browser, line: Line, viewport: dict) -> Iterator:
    context = browser.new_context(viewport=viewport, base_url=line.console.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser, line: Line) -> Iterator:
    yield from opened(browser, line, {"width": 1440, "height": 900})


@pytest.fixture
def phone(browser, line: Line) -> Iterator:
    yield from opened(browser, line, PHONE)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def journal(line: Line, sql: str, args: tuple = ()) -> list[tuple]:
    state = load_config(line.config).paths.state
    with sqlite3.connect(state / "journal.sqlite") as db:
        return db.execute(sql, args).fetchall()


def board_of(line: Line, part_id: str) -> dict | None:
    """The newest journaled verdict of `part_id`."""
    rows = journal(
        line,
        "SELECT verdict_json FROM inspections WHERE part_id = ? ORDER BY rowid DESC LIMIT 1",
        (part_id,),
    )
    return json.loads(rows[0][0]) if rows else None


def first_nok(line: Line) -> dict:
    rows = journal(line, "SELECT verdict_json FROM inspections ORDER BY rowid")
    return next(
        v
        for v in (json.loads(row[0]) for row in rows)
        if v["evaluation"] == "NOK" and not v.get("duplicate_of")
    )


def reshot_anew(line: Line, board: dict, folder: Path) -> Board:
    """A NOK board's photo with one corner pixel changed: judged alike, but not a duplicate."""
    source = next(b for b in boards_to_feed(line.config) if b.part_id == board["part_id"])
    image = cv2.imread(str(source.image), cv2.IMREAD_COLOR)
    image[0, 0] = 255 - image[0, 0]
    path = folder / f"{source.part_id}.png"
    cv2.imwrite(str(path), image)
    return dataclasses.replace(source, image=path)


def test_a_wrong_label_is_taken_back_and_new_boards_join_the_review_queue(
    page, line: Line, shots, tmp_path: Path
):
    page.goto("/review")
    expect(page.locator("#review")).to_be_visible()
    remaining = int(page.locator("#remaining").inner_text())
    result_id = page.locator("#r-board").get_attribute("href").split("/")[2].split("#")[0]
    connector = page.locator("#r-conn").inner_text()

    page.locator("#b-ok").click()  # the wrong label, by touch

    expect(page.locator("#remaining")).to_have_text(str(remaining - 1))
    labels = "SELECT label, confirmed_by FROM confirmations WHERE result_id = ? AND connector = ?"
    assert journal(line, labels, (result_id, connector)) == [("OK", "console:operator")]
    page.get_by_role("button", name="Undo last label").click()

    expect(page.locator("#remaining")).to_have_text(str(remaining))
    expect(page.locator("#r-conn")).to_have_text(connector)
    assert page.locator("#r-board").get_attribute("href").startswith(f"/board/{result_id}")
    assert journal(line, labels, (result_id, connector)) == []
    assert journal(
        line,
        "SELECT label, confirmed_by, withdrawn_by FROM withdrawn_confirmations"
        " WHERE result_id = ? AND connector = ?",
        (result_id, connector),
    ) == [("OK", "console:operator", "console:operator")]

    page.get_by_role("button", name="Skip →").click()
    expect(page.locator("#r-pos")).to_contain_text(f"2 of {remaining}")
    page.get_by_role("button", name="← Back").click()
    expect(page.locator("#r-pos")).to_contain_text(f"1 of {remaining}")

    line.feed(reshot_anew(line, first_nok(line), tmp_path), "NEW-0001.png")
    total = line.client().get_json("/api/review")["total"]
    assert total > remaining
    expect(page.locator("#remaining")).to_have_text(str(total), timeout=15_000)
    page.screenshot(path=shots / "console-review-undo.png")


@pytest.mark.parametrize("path", ["/", "/review", "/board", "/connector/J3", "/health"])
def test_every_page_fits_a_phone_with_its_navigation_and_columns_in_view(
    phone, line: Line, shots, path: str
):
    target = f"/board/{first_nok(line)['result_id']}" if path == "/board" else path
    phone.goto(target)

    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    header = phone.locator("header.top")
    for item in [*header.locator("nav a").all(), header.get_by_role("textbox", name="Operator")]:
        box = item.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], item.inner_text()
    if path == "/":
        for header in ("Not OK", "Latency"):
            box = phone.locator("#feed th", has_text=header).bounding_box()
            assert box["x"] + box["width"] <= PHONE["width"], header
    phone.screenshot(path=shots / f"console-phone{path.replace('/', '-')}.png", full_page=True)


def test_the_connector_page_says_a_retrain_runs_and_what_became_of_its_candidate(
    page, line: Line, shots
):
    config = load_config(line.config)
    status_file = retrain_root(config) / STATUS_FILE
    status_file.parent.mkdir(parents=True, exist_ok=True)
    running = RunReport("run-7", "timer", "2026-12-06T02:00:00Z")
    write_json_atomic(status_file, running.status("running", ["J3"]))

    page.goto("/connector/J3")

    expect(page.locator("#retrain")).to_contain_text("J3 is being retrained now")
    expect(page.locator("#retrain")).not_to_contain_text("did not retrain")

    active = line.active("J3")
    done = RunReport("run-7", "timer", "2026-12-06T02:00:00Z", finished_at="2026-12-06T02:09Z")
    done.results.append(ConnectorResult("J3", "candidate", active, "shadowing before promotion"))
    write_json_atomic(status_file, done.status("idle"))
    gate = "accepted: finds every KO of the library and rejects no more OK than the active model"
    gate_file = config.paths.models / "J3" / OLD_VERSION / "gate.json"
    write_json_atomic(gate_file, {"summary": gate, "accepted": True})

    page.reload()

    expect(page.locator("#retrain .chip")).to_have_text("active")
    expect(page.locator("#retrain")).to_contain_text("the retrain made it candidate")
    cell = page.locator("tr.gate td", has_text=gate)
    box = cell.bounding_box()
    assert box["width"] > 4 * box["height"], box
    page.screenshot(path=shots / "console-connector-retrain.png", full_page=True)


def test_an_operator_name_in_any_script_is_kept_on_tab_and_a_refused_one_says_why(page, line: Line):
    page.goto("/")
    name = page.locator("header.top input[name=name]")

    name.fill("Jürgen Müller")
    name.press("Tab")

    expect(page.locator("#toast")).to_contain_text("recorded as Jürgen Müller")
    page.reload()
    expect(name).to_have_value("Jürgen Müller")
    board = first_nok(line)
    reply = page.evaluate(
        "(body) => postJson('/api/confirm', body)",
        {"result_id": board["result_id"], "label": "KO"},
    )
    assert reply["by"] == "console:Jürgen Müller"
    assert journal(
        line,
        "SELECT DISTINCT confirmed_by FROM confirmations WHERE result_id = ?",
        (board["result_id"],),
    ) == [("console:Jürgen Müller",)]

    name.fill("Jürgen <admin>")
    page.locator("h1").click()

    expect(page.locator("#toast")).to_contain_text("may not hold '<' '>'")
    expect(name).to_have_class("refused")
    page.reload()
    expect(name).to_have_value("Jürgen Müller")


def test_a_reshot_board_links_its_original_and_refuses_a_confirmation(page, line: Line):
    reshot = board_of(line, RESHOT)
    original = reshot["duplicate_of"]
    before = journal(line, "SELECT COUNT(*) FROM confirmations")

    page.goto(f"/board/{reshot['result_id']}")

    expect(page.locator("#reshot a")).to_have_attribute("href", f"/board/{original}")
    expect(page.locator("button[data-post='/api/confirm']")).to_have_count(0)
    status, reply = line.client().post_json(
        "/api/confirm", {"result_id": reshot["result_id"], "label": "OK"}
    )
    assert status == 409
    assert f"/board/{original}" in reply
    assert journal(line, "SELECT COUNT(*) FROM confirmations") == before
    queue = line.client().get_json("/api/review")["items"]
    assert reshot["result_id"] not in {item["result_id"] for item in queue}


def test_the_board_page_explains_a_nok_and_shows_its_pictures_large(page, line: Line, shots):
    board = first_nok(line)
    flagged = [c for c in board["connectors"] if c["evaluation"] == "NOK"]
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(f"/board/{board['result_id']}")

    for connector in flagged:
        ratio = connector["score"] / connector["threshold"]
        expect(page.locator("#why")).to_contain_text(
            f"{connector['id']} scored {ratio:.1f} × its threshold"
        )
    page.wait_for_function(
        "[...document.images].every((img) => img.complete && img.naturalWidth > 0)"
    )
    assert page.evaluate("document.querySelector('.scale img').naturalWidth") == 256
    expect(page.locator(".scale")).to_contain_text("threshold")
    box = load_config(line.config).connectors[flagged[0]["id"]].box
    reference = page.locator(f"#c-{flagged[0]['id']} img[alt^=reference]")
    assert reference.evaluate("(img) => img.naturalWidth") == box[2]

    page.locator(f"#c-{flagged[0]['id']} img[alt^=crop]").click()

    expect(page.locator("#zoom")).to_be_visible()
    expect(page.locator("#zoom img")).to_have_count(3)
    assert page.locator("#zoom img").nth(1).bounding_box()["width"] > 300
    page.screenshot(path=shots / "console-board-zoom.png")
    page.keyboard.press("Escape")
    expect(page.locator("#zoom")).to_be_hidden()

    before = journal(line, "SELECT COUNT(*) FROM confirmations")
    page.get_by_role("button", name="Whole board OK").click()
    assert dialogs and "every connector" in dialogs[0]
    assert journal(line, "SELECT COUNT(*) FROM confirmations") == before


def test_an_error_board_names_its_file_not_the_servers_path_and_says_why_once(
    page, line: Line, shots
):
    board = board_of(line, "garbled")
    why = board["error"]["message"].rsplit(": ", 1)[-1]

    page.goto(f"/board/{board['result_id']}")

    text = page.locator("main").inner_text()
    assert str(line.drop) not in page.content()
    assert "garbled.png" in text and "camera cam1" in text
    assert text.count(why) == 1, text
    expect(page.get_by_role("button", name="Whole board OK")).to_have_count(0)
    page.screenshot(path=shots / "console-board-error.png", full_page=True)


def test_a_board_not_judged_whole_offers_no_whole_board_label(page, line: Line):
    board = board_of(line, SHIFTED)
    assert board["evaluation"] == "NOT_DECIDABLE", board
    scored = next(c["id"] for c in board["connectors"] if c["evaluation"] == "OK")

    page.goto(f"/board/{board['result_id']}")

    expect(page.get_by_role("button", name="Whole board OK")).to_have_count(0)
    expect(page.locator("#why")).to_contain_text("outside the photo")
    expect(page.locator(f"#c-{scored} button", has_text="OK")).to_have_count(1)


def test_only_new_feed_rows_flash_and_the_next_page_has_a_clean_address(page, line: Line):
    page.goto("/")
    rows = page.locator("#feed-rows tr")
    animated = "(rows) => rows.map((row) => getComputedStyle(row).animationName)"
    assert set(rows.evaluate_all(animated)) == {"none"}

    line.feed(boards_to_feed(line.config)[-1], "FLASH-0001.png")

    expect(rows.first.locator("td.part")).to_have_text("FLASH-0001")
    names = rows.evaluate_all(animated)
    assert names[0] == "arrive" and set(names[1:]) == {"none"}

    shown = journal(line, "SELECT COUNT(*) FROM inspections")[0][0]
    image = boards_to_feed(line.config)[-1].image
    for n in range(51 - shown):
        drop_board(image, line.drop, f"PAGE-{n:04d}.png")
    wait_until(lambda: journal(line, "SELECT COUNT(*) FROM inspections")[0][0] >= 51, what="51")
    page.goto("/")
    older = page.get_by_role("link", name="Older →")
    href = older.get_attribute("href")
    assert href.startswith("/?before=") and "&" not in href, href
    older.click()
    expect(page.locator("#feed-rows tr").first).to_be_visible()
    expect(page.get_by_role("link", name="Newest")).to_have_attribute("href", "/")


def test_the_health_page_and_the_review_page_count_the_same_boards_to_review(page, line: Line):
    page.goto("/review")
    listed = page.locator("#remaining").inner_text()
    page.goto("/health")

    expect(page.locator("#to-review")).to_have_text(listed)
    assert line.client().get_json("/api/health")["journal"]["to_review"] == int(listed)


def test_the_console_prints_an_ipv6_address_a_browser_opens(line: Line):
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "edge_agent.cli", "console", "--config", str(line.config)),
            *("--host", "::1", "--port", str(port)),
        ],
        env={**line.agent.env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        printed = process.stdout.readline().strip()
        url = f"http://[::1]:{port}/"
        assert printed == f"edge-inspect console: {url} (0 users)"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "static/console.css", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "nothing answers at the printed address"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
