"""The console in a real browser (Debian's chromium driven by Playwright) beside a real agent.

Screenshots go to $CONSOLE_SCREENSHOTS (the README's come from `CONSOLE_SCREENSHOTS=docs/img`),
else to the test's temporary folder.
"""

from __future__ import annotations

import os
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_station import (
    CONNECTORS,
    OLD_VERSION,
    Line,
    boards_to_feed,
    built_station,
    start_line,
    stop_line,
)
from mqtt_broker import wait_until
from retrain_station import PREFIX

from edge_agent.contracts.bundle import active_dir
from edge_agent.contracts.config import load_config
from edge_agent.store.crop_store import CropStore
from trainer.retrain.dataset import Assembler
from trainer.settings import load_config as load_trainer_config

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api")
FED_BOARDS = 4


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    config = built_station(tmp_path_factory)
    running = start_line(
        config, tmp_path_factory.mktemp("browser"), boards_to_feed(config)[:FED_BOARDS]
    )
    yield running
    stop_line(running)


@pytest.fixture
def page(browser, line: Line) -> Iterator:
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, base_url=line.console.url
    )
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_board_dropped_into_the_running_agent_appears_in_the_feed(page, line: Line, shots):
    page.goto("/")
    rows = page.locator("#feed-rows tr")
    sync_api.expect(rows).to_have_count(FED_BOARDS)
    board = boards_to_feed(line.config)[-1]

    line.feed(board, "LIVE-0001.png")

    newest = rows.first
    sync_api.expect(newest.locator("td.part")).to_have_text("LIVE-0001")
    sync_api.expect(rows).to_have_count(FED_BOARDS + 1)
    page.screenshot(path=shots / "console-feed.png")
    page.locator("#feed-rows tr", has_text="b0").first.click()
    page.wait_for_url("**/board/*")
    sync_api.expect(page.locator(".connectors .conn")).to_have_count(len(CONNECTORS))
    page.wait_for_function(
        "[...document.images].every((img) => img.complete && img.naturalWidth > 0)"
    )
    page.screenshot(path=shots / "console-board.png", full_page=True)


def latest_labels(line: Line, result_id: str) -> dict[str, tuple[str, str]]:
    state = load_config(line.config).paths.state
    with sqlite3.connect(state / "journal.sqlite") as db:
        rows = db.execute(
            "SELECT connector, label, confirmed_by FROM confirmations WHERE result_id = ?"
            " ORDER BY id",
            (result_id,),
        ).fetchall()
    return {connector: (label, by) for connector, label, by in rows}


def retrain_ko_origins(line: Line, connector: str) -> set[str]:
    """What the nightly job's data assembly puts in the KO library of `connector`."""
    config = load_trainer_config(line.config)  # the trainer's view: [retrain] typed
    _, _, width, height = config.connectors[connector].box
    store = CropStore(config.paths.state)
    try:
        assembly = Assembler(
            connector,
            (height, width),
            config.paths.state / "retrain" / connector / "library",
            max_train=config.retrain.max_train,
            new_share=config.retrain.new_share,
            max_holdout=config.retrain.max_holdout,
            gate_share=config.retrain.gate_share,
            holdout_fraction=config.training.holdout_fraction,
        ).assemble(
            config.retrain.seed_data / connector,
            store,
            active_dir(config.paths.models, connector),
        )
    finally:
        store.close()
    return {crop.origin for crop in assembly.ko}


def test_confirming_a_connector_in_the_review_page_feeds_the_nightly_retrain(
    page, line: Line, shots
):
    page.goto("/review")
    sync_api.expect(page.locator("#review")).to_be_visible()
    page.wait_for_function("document.getElementById('r-heat').naturalWidth > 0")
    page.screenshot(path=shots / "console-review.png")
    remaining = int(page.locator("#remaining").inner_text())
    result_id = page.locator("#r-board").get_attribute("href").split("/")[2].split("#")[0]
    connector = page.locator("#r-conn").inner_text()

    page.keyboard.press("k")

    sync_api.expect(page.locator("#remaining")).to_have_text(str(remaining - 1))
    assert latest_labels(line, result_id)[connector] == ("KO", "console:operator")
    assert f"confirmed/{result_id}" in retrain_ko_origins(line, connector)


def test_promote_and_rollback_in_the_page_switch_the_model_the_agent_runs(page, line: Line, shots):
    topic = f"{PREFIX}/model/J3"
    current = line.active("J3")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/connector/J3")

    sync_api.expect(page.locator("tr.active td.test")).to_contain_text("synthetic defects")
    page.screenshot(path=shots / "connector.png", full_page=True)
    page.locator("tr", has_text=OLD_VERSION).get_by_role("button", name="Activate").click()

    wait_until(lambda: line.active("J3") == OLD_VERSION, what="J3 active link switched")
    line.recorder.wait_for(
        lambda ms: any(m.topic == topic and m.json()["version"] == OLD_VERSION for m in ms)
    )
    sync_api.expect(page.locator("tr.active")).to_contain_text(OLD_VERSION)

    page.get_by_role("button", name=f"Roll back to {current}").click()

    wait_until(lambda: line.active("J3") == current, what="J3 rolled back")
    line.recorder.wait_for(
        lambda ms: any(
            m.topic == topic
            and m.json()["version"] == current
            and (m.json().get("last_event") or {}).get("event") == "rolled_back"
            for m in ms
        )
    )
    sync_api.expect(page.locator("tr.active")).to_contain_text(current)


def drag(page, locator, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at `start`, move to `end`, release; fractions of the element's size."""
    box = locator.bounding_box()
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=8)
    page.mouse.up()


def test_drawing_a_box_in_setup_changes_config_toml_and_the_crop_preview(page, line: Line, shots):
    before = tomllib.loads(line.config.read_text())["connectors"]
    page.goto("/setup")
    canvas = page.locator("#canvas")
    sync_api.expect(canvas.locator(".box")).to_have_count(len(CONNECTORS))

    drag(page, canvas, (0.40, 0.55), (0.52, 0.70))

    sync_api.expect(canvas.locator(".box")).to_have_count(len(CONNECTORS) + 1)
    sync_api.expect(page.locator("#sel-name")).to_have_text("J2")
    preview = page.locator("#previews img").first
    page.wait_for_function(
        "() => { const i = document.querySelector('#previews img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    drawn = [int(v) for v in preview.get_attribute("src").split("box=")[1].split(",")]
    assert page.evaluate("document.querySelector('#previews img').naturalWidth") == drawn[2]
    drag(page, page.locator("#previews .preview").first, (0.25, 0.25), (0.75, 0.75))
    page.screenshot(path=shots / "console-setup.png")
    page.get_by_role("button", name="Save").click()
    sync_api.expect(page.locator("#toast")).to_contain_text("Saved")

    saved = tomllib.loads(line.config.read_text())
    assert saved["connectors"]["J2"] == {"box": drawn, "enabled": False}  # no model yet
    assert {k: saved["connectors"][k] for k in before} == before
    kept = sorted((line.config.parent / "config-backups").glob("*.toml"))
    assert kept[-1].read_text().count("[connectors.") == len(CONNECTORS)
    rois = load_config(line.config).training.roi_file
    assert rois is not None and "J2" in rois.read_text()

    page.locator("#canvas .box", has_text="J1").click()
    first = page.locator("#previews img").first.get_attribute("src")
    drag(page, page.locator("#canvas .box", has_text="J1"), (0.5, 0.5), (0.6, 0.5))
    moved = page.locator("#previews img").first.get_attribute("src")
    assert moved != first
    assert moved.split("box=")[1].split(",")[1:] == first.split("box=")[1].split(",")[1:]
