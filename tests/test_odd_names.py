"""Odd drop-folder file names: each input ends in exactly one verdict and the line keeps moving.

One real `edge-inspect run` process (a template model: no training), a real mosquitto and a real
drop folder on this machine's file system. Each case is a name a camera PC or an FTP drop
really writes: bytes that are not UTF-8, a name near the file system's 255-byte limit (on a
good image and on an undecodable one), a leading dot, a newline, a leading dash. After each
case ten ordinary boards get their verdicts without a restart; after a restart nothing is
inspected twice and the agent is ready.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from template_station import PREFIX, board_png, write_station

from edge_agent.contracts.atomic import write_bytes_atomic
from edge_agent.inputs.drop_folder import PARTIAL_UPLOAD_NOTICE_S
from edge_agent.inputs.names import name_text
from trainer.harness.station_run import AgentProcess

VERDICT_TOPIC = f"{PREFIX}/verdict"
NEXT_BOARDS = 10
LATIN1 = b"Pr\xfcfung.jpg"  # "Prüfung.jpg" as an old Windows camera PC writes it
LONG_GOOD = b"B" * 236 + b".png"  # 240 bytes: `<result_id>_<name>` would be 267
LONG_UNDECODABLE = b"U" * 216 + b".png"  # 220 bytes: `<...>.reason.txt` would be 258
NEWLINE = b"line\nbreak.png"
DASH = b"-rf --help.png"
DOT_FILE = b"..png"


def _drop(folder: Path, name: bytes, data: bytes) -> None:
    """Write a file beside the folder, then rename it in under `name` (as a camera does)."""
    staging = folder.parent / "staging"
    staging.mkdir(exist_ok=True)
    temporary = staging / "upload"
    temporary.write_bytes(data)
    os.rename(temporary, os.path.join(os.fsencode(folder), name))


def _readyz(agent: AgentProcess) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{agent.health_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _rows(root: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(root / "state" / "journal.sqlite") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM inspections ORDER BY session, seq").fetchall()


def _one_line_utf8(name: bytes) -> bool:
    """Valid UTF-8 without control characters: its own rendering."""
    text = name.decode("utf-8")
    return name_text(text) == text


def _partial_uploads(log: Path) -> list[dict]:
    """The agent's log lines about partial uploads."""
    lines = [json.loads(text) for text in log.read_text().splitlines() if text[:1] == "{"]
    return [entry for entry in lines if "partial upload" in entry.get("event", "")]


def _filed(root: Path) -> list[bytes]:
    """Every filed name (bytes) below the drop folder's processed/ and failed/."""
    found = []
    for outcome in ("processed", "failed"):
        for _, _, files in os.walk(os.fsencode(root / "drop" / "cam1" / outcome)):
            found.extend(files)
    return found


class Line:
    """The agent under test, its drop folder and the verdicts it published."""

    def __init__(self, root: Path, broker: MosquittoBroker, verdicts: MqttRecorder) -> None:
        self.root, self.broker, self.verdicts = root, broker, verdicts
        self.folder = root / "drop" / "cam1"
        self.log = root / "agent.log"
        self.agent = self._start()
        self.boards = 0

    def _start(self) -> AgentProcess:
        agent = AgentProcess(self.root / "edge.toml", self.broker.port, self.log).start()
        agent.wait_ready(60)
        return agent

    def restart(self) -> None:
        self.agent.stop()
        self.agent = self._start()

    def count(self) -> int:
        return len(self.verdicts.on_topic(VERDICT_TOPIC))

    def verdict_of(self, name: bytes) -> dict:
        """Drop one file and return its verdict, the next one published."""
        seen = self.count()
        _drop(self.folder, name, self._data_for(name))
        self.verdicts.wait_for(lambda ms: len(ms) > seen, timeout=60)
        return self.verdicts.on_topic(VERDICT_TOPIC)[seen].json()

    def _data_for(self, name: bytes) -> bytes:
        return b"not an image at all" if name == LONG_UNDECODABLE else board_png(zlib.crc32(name))

    def next_boards_get_verdicts(self) -> None:
        """Ten ordinary boards, each with one verdict, without a restart."""
        seen = self.count()
        numbers = range(self.boards, self.boards + NEXT_BOARDS)
        self.boards += NEXT_BOARDS
        parts = [f"SN{number:04d}" for number in numbers]
        for number, part in zip(numbers, parts, strict=True):
            # As many cameras write: a temporary `.SN….png.<pid>.tmp` here, then a rename.
            write_bytes_atomic(self.folder / f"{part}.png", board_png(1000 + number))
        self.verdicts.wait_for(lambda ms: len(ms) >= seen + NEXT_BOARDS, timeout=60)
        published = [m.json()["part_id"] for m in self.verdicts.on_topic(VERDICT_TOPIC)[seen:]]
        assert published == parts
        code, body = _readyz(self.agent)
        assert code == 200, body
        assert body["storage"]["journal_backlog"] == 0 and body["storage"]["stuck_input"] is None


@pytest.fixture
def line(tmp_path: Path, broker: MosquittoBroker, recorder) -> Iterator[Line]:
    write_station(tmp_path)
    running = Line(tmp_path, broker, recorder(VERDICT_TOPIC))
    try:
        yield running
    finally:
        running.agent.stop()


@pytest.mark.slow
def test_odd_names_each_get_one_verdict_and_the_next_boards_follow_without_a_restart(
    line: Line,
) -> None:
    latin1 = line.verdict_of(LATIN1)
    assert latin1["evaluation"] == "OK"
    assert latin1["source"]["uri"].endswith("/Pr%FCfung.jpg")  # the exact bytes, escaped
    line.next_boards_get_verdicts()

    long_good = line.verdict_of(LONG_GOOD)
    assert long_good["evaluation"] == "OK"
    line.next_boards_get_verdicts()

    long_bad = line.verdict_of(LONG_UNDECODABLE)
    assert long_bad["evaluation"] == "ERROR" and long_bad["error"]["stage"] == "decode"
    line.next_boards_get_verdicts()

    newline, dash = line.verdict_of(NEWLINE), line.verdict_of(DASH)
    assert newline["source"]["uri"].endswith("/line%0Abreak.png")
    assert dash["part_id"] == "rf_--help"
    line.next_boards_get_verdicts()

    seen = line.count()
    _drop(line.folder, DOT_FILE, board_png(7))
    line.next_boards_get_verdicts()  # the dot-file holds nothing up...
    assert line.count() == seen + NEXT_BOARDS  # ...and gets no verdict of its own
    wait_until(lambda: _partial_uploads(line.log), 30, "the partial-upload line")
    threading.Event().wait(PARTIAL_UPLOAD_NOTICE_S)  # a second line would be due by now
    # Once, in plain words; the boards' own `.SN….tmp` names (renamed at once) not at all.
    assert [entry["file"] for entry in _partial_uploads(line.log)] == ["..png"]
    assert "renamed without the leading dot" in _partial_uploads(line.log)[0]["event"]
    os.rename(line.folder / "..png", line.folder / "renamed.png")
    renamed = line.verdicts.wait_for(lambda ms: len(ms) == seen + NEXT_BOARDS + 1)[-1]
    assert renamed.json()["part_id"] == "renamed"

    # Every odd input was filed under a name the product made: `<result_id>_`, valid UTF-8.
    odd = [latin1, long_good, long_bad, newline, dash]
    filed = _filed(line.root)
    for verdict in odd:
        mine = [name for name in filed if name.startswith(verdict["result_id"].encode() + b"_")]
        failed = verdict["evaluation"] in ("ERROR", "NOT_DECIDABLE")
        expected = 2 if failed else 1  # a failed input has its `.reason.txt` beside it
        assert len(mine) == expected, (verdict["result_id"], mine)
        assert all(len(name) <= 255 and _one_line_utf8(name) for name in mine)
    reason = next(name for name in filed if name.endswith(b".reason.txt"))
    note = (line.folder / "failed").glob(f"*/{reason.decode()}")
    assert "source: file://" in next(note).read_text(encoding="utf-8")
    # The verdict goes out once journalled; the file is moved right after: none is left.
    emptied = ["failed", "processed"]
    wait_until(lambda: sorted(os.listdir(line.folder)) == emptied, 30, "an empty drop folder")

    # Journal rows: one per verdict, text SQLite and JSON accept, the exact bytes in the URI.
    rows = _rows(line.root)
    assert len(rows) == line.count()
    by_id = {row["result_id"]: row for row in rows}
    assert by_id[latin1["result_id"]]["source_path"].endswith("/Pr%FCfung.jpg")
    assert by_id[newline["result_id"]]["source_path"].endswith("/line%0Abreak.png")

    line.restart()  # nothing waits, nothing is inspected twice
    code, body = _readyz(line.agent)
    assert code == 200 and body["storage"]["journal_backlog"] == 0
    line.next_boards_get_verdicts()
    assert len(_rows(line.root)) == line.count()
