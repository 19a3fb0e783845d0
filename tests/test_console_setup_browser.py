"""The set-up page in Chromium cannot break the line: a resize refused, a move saved, a stale
page refused, backups listed and one restored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from console_station import Line, built_station, start_line, stop_line

from edge_agent.console.layout_request import read_request
from edge_agent.contracts.config import load_config

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    running = start_line(built_station(tmp_path_factory), tmp_path_factory.mktemp("setup"), [])
    yield running
    stop_line(running)


@pytest.fixture
def context(line: Line, browser) -> Iterator:
    opened = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=line.console.url)
    yield opened
    opened.close()


def drag(page, locator, dx: float, dy: float) -> None:
    """Press at the element's centre and move it by (dx, dy) screen pixels."""
    box = locator.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=8)
    page.mouse.up()


def j1_box(line: Line) -> tuple[int, int, int, int]:
    return load_config(line.config).connectors["J1"].box


def test_resize_refused_move_saved_stale_page_refused_backup_restored(context, line: Line):
    original = j1_box(line)
    page = context.new_page()
    page.goto("/setup")
    toast = page.locator("#toast")

    drag(page, page.locator("#canvas .box", has_text="J1").locator(".handle"), 30, 20)
    page.get_by_role("button", name="Save", exact=True).click()
    sync_api.expect(toast).to_contain_text("J1: the box is")
    sync_api.expect(toast).to_contain_text("needs a new model")
    assert j1_box(line) == original

    page.reload()
    stale = context.new_page()
    stale.goto("/setup")
    drag(page, page.locator("#canvas .box", has_text="J1"), 25, 0)
    page.get_by_role("button", name="Save", exact=True).click()
    sync_api.expect(toast).to_contain_text("Saved")
    moved = j1_box(line)
    assert moved[2:] == original[2:] and moved[0] > original[0] and moved[1] == original[1]
    sync_api.expect(page.locator("#backups tbody tr")).to_have_count(1)
    sync_api.expect(page.locator("#backups tbody tr")).to_contain_text("J1 moved")

    drag(stale, stale.locator("#canvas .box", has_text="J1"), -25, 0)
    stale.get_by_role("button", name="Save", exact=True).click()
    sync_api.expect(stale.locator("#toast")).to_contain_text(
        "changed since this page was loaded (by "
    )
    assert j1_box(line) == moved

    page.locator("#backups tbody tr").first.get_by_role("button", name="Restore").click()
    sync_api.expect(toast).to_contain_text("Restored")
    assert j1_box(line) == original
    sync_api.expect(page.locator("#backups tbody tr")).to_have_count(2)


def test_a_config_broken_by_hand_is_named_not_served_stale(line: Line):
    good = line.config.read_text()
    line.config.write_text(good + "\n[connectors.J9]\nbox = [1, 2]\n")
    try:
        status, reply = line.client().post_json("/api/setup", {"connectors": []})
        assert status == 409
        assert "earlier versions are in config-backups/" in reply
        assert line.config.read_text().endswith("box = [1, 2]\n")
    finally:
        line.config.write_text(good)
    assert line.client().get_json("/api/setup")["connectors"][0]["id"] == "J1"


def test_save_and_retrain_is_offered_for_a_resize_and_waits_without_touching_config(
    context, line: Line
):
    original, text = j1_box(line), line.config.read_text()
    page = context.new_page()
    page.goto("/setup")
    offer = page.get_by_role("button", name="Save and retrain")
    sync_api.expect(offer).to_be_hidden()

    drag(page, page.locator("#canvas .box", has_text="J1").locator(".handle"), 30, 20)
    page.get_by_role("button", name="Save", exact=True).click()
    offer.click()
    pending = page.locator("#pending")
    sync_api.expect(pending).to_contain_text("Save and retrain asked by")
    sync_api.expect(pending).to_contain_text("Waiting for the trainer")
    assert line.config.read_text() == text and j1_box(line) == original
    request = read_request(load_config(line.config))
    assert request is not None and list(request["connectors"]) == ["J1"]

    page.reload()
    sync_api.expect(pending).to_contain_text("inspects with the current boxes")
    page.get_by_role("button", name="Cancel").click()
    sync_api.expect(pending).to_contain_text("cancelled by")
    assert read_request(load_config(line.config)) is None and line.config.read_text() == text
