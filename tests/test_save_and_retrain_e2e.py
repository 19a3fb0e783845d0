""" "Save and retrain" end to end: a real agent inspects a stream of boards from its drop folder
while `edge-inspect retrain-layout` trains a model for J3's resized box from the stored boards,
gates it and switches layout and model together; afterwards boards are cut with the new box and
scored by the new version, and no board of the whole stream is ERROR or NOT_DECIDABLE."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, wait_until
from retrain_station import PREFIX, build_station, cli, publish

from edge_agent.console.layout_request import read_request, read_status, write_request
from edge_agent.console.setup_backups import file_sha256, list_backups
from edge_agent.console.station_setup import BoxLayout, Layout
from edge_agent.contracts.atomic import replacing
from edge_agent.contracts.bundle import active_dir, read_manifest
from edge_agent.contracts.verdict import ERROR, NOT_DECIDABLE
from edge_agent.inspect.imaging import encode_png, read_image_file
from edge_agent.store.crop_store import CropStore
from trainer.harness.station_run import AgentProcess, Board, VerdictListener, load_boards
from trainer.settings import load_config

pytestmark = pytest.mark.slow

CONNECTOR = "J3"
GROW = (8, 6)  # the box grows by this many pixels (width, height)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated station with its first J3 model (built once for this module)."""
    return build_station(tmp_path_factory.mktemp("built") / "station", (CONNECTOR,))


class Stream:
    """Drops boards into the agent's drop folder one after another (each under a new name, so a
    board seen before is a new input), each once its previous verdict arrived; in the
    background, good boards only."""

    def __init__(self, site: Path, listener: VerdictListener) -> None:
        boards = load_boards(site.parent, ("train", "val", "test"))
        self.boards = [b for b in boards if b.labels[CONNECTOR] == "OK"]
        self.ko = [b for b in boards if b.labels[CONNECTOR] == "KO"]
        self.drop = site.parent / "drop" / "cam1"
        self.listener = listener
        self.names = itertools.count()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def feed(self, count: int, boards: list[Board] | None = None) -> list[dict]:
        """Drop `count` boards (good ones unless `boards` are given), waiting for each verdict;
        each photo differs from every other in one pixel, so none is a repeat (a repeat's crops
        are not kept again). Returns their verdicts."""
        for index in range(count):
            number = next(self.names)
            pool = boards or self.boards
            board = pool[(index if boards else number) % len(pool)]
            image = read_image_file(board.image)
            image[0, 0] = (number % 256, number // 256, 0)
            expected = len(self.listener.verdicts) + 1
            target = self.drop / f"{board.part_id}-{number}.png"
            with replacing(target) as tmp:
                tmp.write_bytes(encode_png(image))
            assert self.listener.wait_for(expected, 60), "a board got no verdict"
        return [verdict for _, verdict in self.listener.verdicts[-count:]]

    def start(self) -> None:
        def run() -> None:
            while not self.stop.is_set():
                self.feed(1)
                self.stop.wait(0.2)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(90)


def confirmations(config) -> int:
    with sqlite3.connect(config.paths.state / "journal.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM confirmations").fetchone()[0]


def versions_seen(listener: VerdictListener) -> list[str]:
    return [
        row["model"]["version"]
        for _, verdict in listener.verdicts
        for row in verdict["connectors"]
        if row["id"] == CONNECTOR and row.get("model")
    ]


def test_save_and_retrain_switches_box_and_model_together_under_a_running_line(
    site: Path, broker: MosquittoBroker, agent: AgentProcess
) -> None:
    config = load_config(site)
    old_version = active_dir(config.paths.models, CONNECTOR).name
    listener = VerdictListener(broker.port, PREFIX)
    stream = Stream(site, listener)
    try:
        # the stored boards the new model learns from; those with J3 KO, once confirmed, only
        # calibrate and check it
        for verdict in stream.feed(len(stream.ko), stream.ko):
            confirm = {"result_id": verdict["result_id"], "connector": CONNECTOR, "label": "KO"}
            publish(broker, f"{PREFIX}/confirm", {**confirm, "by": "mes"})
        stream.feed(24 - len(stream.ko))
        wait_until(lambda: confirmations(config) == len(stream.ko), 30, "confirmations journaled")
        x, y, width, height = config.connectors[CONNECTOR].box
        new_box = (x, y, width + GROW[0], height + GROW[1])
        layout = Layout(
            connectors=[BoxLayout(id=CONNECTOR, box=new_box)], base_sha256=file_sha256(site)
        )
        reference = read_image_file(config.station.reference_image)
        size = (reference.shape[1], reference.shape[0])
        write_request(site, config, layout, size, by="ana")
        assert load_config(site).connectors[CONNECTOR].box == (x, y, width, height)

        before = len(listener.verdicts)
        stream.start()
        done = cli("retrain-layout", "--config", str(site), port=broker.port, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "took up the new layout" in done.stdout, done.stdout
        assert f"catches all {len(stream.ko)} KO" in done.stdout, done.stdout
        switched_at = len(listener.verdicts)
        assert switched_at - before >= 5, "the line stood still while the model was trained"
        assert listener.wait_for(switched_at + 5, 60)
        stream.finish()

        new_version = active_dir(config.paths.models, CONNECTOR).name
        assert new_version != old_version and read_request(config) is None
        assert read_status(config)["state"] == "done"
        assert load_config(site).connectors[CONNECTOR].box == new_box
        assert list_backups(site)[0].by == "ana (save and retrain)"
        model_input = read_manifest(config.paths.models / CONNECTOR / new_version).input
        assert (model_input.width, model_input.height) == new_box[2:]

        seen = versions_seen(listener)
        assert seen[:24] == [old_version] * 24
        first_new = seen.index(new_version)
        assert set(seen[:first_new]) == {old_version} and set(seen[first_new:]) == {new_version}
        assert len(seen[first_new:]) >= 5
        evaluations = [v["evaluation"] for _, v in listener.verdicts]
        assert not {ERROR, NOT_DECIDABLE} & set(evaluations), evaluations
        after = [v["result_id"] for _, v in listener.verdicts[-5:]]
        store = CropStore(config.paths.state)
        try:  # the crops the agent kept of the last boards: cut with the new box

            def kept_after() -> list:
                return [c for r in after for c in store.kept(r) if c.connector == CONNECTOR]

            wait_until(lambda: len(kept_after()) == len(after), 30, "the last boards' crops")
            kept = kept_after()
        finally:
            store.close()
        assert {read_image_file(c.path).shape[:2] for c in kept} == {(new_box[3], new_box[2])}
        log = agent.log_path.read_text(encoding="utf-8", errors="replace")
        assert "layout_taken_up" in log and "model_refused" not in log
    finally:
        stream.finish()
        listener.close()
