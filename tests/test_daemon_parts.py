"""The agent process's parts, each on its own: spool, command replies, stats, restart filing."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge_agent import boards, daemon
from edge_agent.comms.dispatch import dispatch
from edge_agent.contracts.verdict import build_verdict, new_result_id
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inputs.filing import filed_path
from edge_agent.inputs.spool import ImageSpool, describe
from edge_agent.ops.stats import BoardStats
from edge_agent.store.dedup import file_if_seen
from edge_agent.store.journal import Journal


def test_the_daemon_module_wires_the_stage_parts() -> None:
    assert daemon.ImageSpool is ImageSpool
    assert daemon.dispatch is dispatch
    assert daemon.BoardHandler is boards.BoardHandler
    assert boards.BoardStats is BoardStats
    assert boards.file_if_seen is file_if_seen


def _never_journaled(sha: str, path_prefix: str) -> bool:
    return False


def test_an_image_message_is_on_disk_under_its_declared_camera_with_its_part_id(
    tmp_path: Path,
) -> None:
    refused: list[str] = []
    spool = ImageSpool(tmp_path / "inbox", ["cam1", "cam2"], refused.append, _never_journaled)
    folders = spool.folders()  # made once, at start, for the declared cameras

    taken = [
        spool.on_message("plant/aoi/image/cam2", b"\x89PNG raw", {"part_id": "SN 7"}),
        spool.on_message(
            "plant/aoi/image/cam2",
            json.dumps(
                {"part_id": "SN8", "image": base64.b64encode(b"jpeg bytes").decode()}
            ).encode(),
            {},
        ),
        spool.on_message("plant/aoi/image/cam3", b"\x89PNG raw", {}),  # not declared
    ]

    folder = tmp_path / "inbox" / "cam2"
    assert folders == {"mqtt:cam1": tmp_path / "inbox" / "cam1", "mqtt:cam2": folder}
    assert taken == [True, True, True]  # the unknown camera's too: a redelivery would loop
    assert refused == ["unknown_camera"]
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["cam1", "cam2"]
    files = {p.read_bytes(): p.name for p in folder.iterdir()}
    assert set(files) == {b"\x89PNG raw", b"jpeg bytes"}
    assert files[b"jpeg bytes"].startswith("SN8@")
    assert not list(folder.glob(".*"))  # no temporary file left behind


def test_an_image_the_spool_cannot_write_is_not_taken(tmp_path: Path) -> None:
    refused: list[str] = []
    spool = ImageSpool(tmp_path / "inbox", ["cam1"], refused.append, _never_journaled)
    spool.folders()
    (tmp_path / "inbox" / "cam1").rmdir()
    (tmp_path / "inbox" / "cam1").write_bytes(b"")  # the inbox path is a file

    assert spool.on_message("plant/aoi/image/cam1", b"\x89PNG raw", {}) is False
    assert refused == ["spool_failed"]


def test_a_broker_resend_of_a_spooled_image_is_taken_once(tmp_path: Path) -> None:
    """The agent was killed after spooling and before acknowledging: the broker resends the
    message with the DUP flag and the same packet id; it is not inspected a second time,
    whether its first copy still waits in the inbox or was journaled and filed."""
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start_session()
    spool = ImageSpool(tmp_path / "inbox", ["cam1"], [].append, journal.read_from_path_prefix)
    folder = spool.folders()["mqtt:cam1"]
    image = {"part_id": "SN9"}

    assert spool.on_message("p/image/cam1", b"img A", image, packet_id=7)
    (first,) = folder.iterdir()
    assert spool.on_message("p/image/cam1", b"img A", image, packet_id=7, redelivered=True)
    assert list(folder.iterdir()) == [first]  # still pending: the resend is that file

    _journal_board(journal, first, "OK")
    first.rename(tmp_path / "processed")  # filed after its verdict
    assert spool.on_message("p/image/cam1", b"img A", image, packet_id=7, redelivered=True)
    assert list(folder.iterdir()) == []  # journaled: the resend is that verdict's input

    # Not the same delivery: sent again on purpose (no DUP flag), another packet, other bytes.
    assert spool.on_message("p/image/cam1", b"img A", image, packet_id=7)
    assert spool.on_message("p/image/cam1", b"img A", image, packet_id=8, redelivered=True)
    assert spool.on_message("p/image/cam1", b"img B", image, packet_id=7, redelivered=True)
    assert len(list(folder.iterdir())) == 3
    journal.close()


def test_below_the_journal_disk_floor_an_image_is_left_for_redelivery(tmp_path: Path) -> None:
    refused: list[str] = []
    floor = shutil.disk_usage(tmp_path).free + 10**12  # more than this filesystem has free
    spool = ImageSpool(
        tmp_path / "inbox", ["cam1"], refused.append, _never_journaled, (tmp_path, floor)
    )
    spool.folders()

    assert spool.on_message("plant/aoi/image/cam1", b"\x89PNG raw", {}) is False
    assert refused == ["disk_low"]
    assert not list((tmp_path / "inbox" / "cam1").iterdir())


def test_a_spooled_file_names_its_part_and_the_image_topic(tmp_path: Path) -> None:
    path = tmp_path / "SN8@01J9Z6Q8M3K4T2"
    path.write_bytes(b"x")
    drop = DropFile("cam2", path, "00", b"x")

    part_id, uri, captured_at = describe(drop, spooled=True, prefix="plant/aoi")

    assert (part_id, uri) == ("SN8", "mqtt://plant/aoi/image/cam2")
    assert captured_at.endswith("Z")


@dataclass
class Change:
    connector: str
    new_version: str | None
    error: str | None
    accepted: bool


def test_commands_reply_with_what_they_did() -> None:
    refreshed = []

    def refresh() -> list[Change]:
        refreshed.append(True)
        return [Change("J1", "2026-09-01.2", None, True), Change("J2", None, "bad sha", False)]

    def lifecycle(name: str, payload: bytes) -> dict:
        return {"command": name, "ok": True}

    reload = dispatch("reload", b"", lifecycle=lifecycle, refresh=refresh)
    promote = dispatch("promote", b"{}", lifecycle=lifecycle, refresh=refresh)
    unknown = dispatch("reboot", b"", lifecycle=lifecycle, refresh=refresh)

    assert reload["ok"] is False
    assert reload["changes"][1] == {"connector": "J2", "version": None, "error": "bad sha"}
    assert promote == {"command": "promote", "ok": True}
    assert unknown == {"command": "reboot", "ok": False, "error": "unknown command 'reboot'"}
    assert len(refreshed) == 2  # reload and promote reload the models; an unknown command not


def test_stats_report_latency_percentiles_of_recent_boards() -> None:
    stats = BoardStats()
    empty = stats.payload(session=3, outbox_depth=0)
    for ms in range(1, 101):
        stats.board(float(ms))

    payload = stats.payload(session=3, outbox_depth=5)

    assert empty["latency_ms"] == {"p50": 0.0, "p99": 0.0, "n": 0}
    assert payload["latency_ms"] == {"p50": 50.5, "p99": 99.0, "n": 100}
    assert (payload["session"], payload["outbox_depth"]) == (3, 5)


def _journal_board(journal: Journal, path: Path, evaluation: str) -> str:
    data = path.read_bytes()
    verdict = build_verdict(
        result_id=new_result_id(),
        station="line/aoi",
        camera="cam1",
        part_id=path.stem,
        source_uri=path.as_uri(),
        source_sha256=hashlib.sha256(data).hexdigest(),
        captured_at=None,
        processing_ms={},
        connectors=[],
    )
    verdict["evaluation"] = evaluation
    journal.record_inspection(verdict, [], "plant/aoi/verdict", source_path=str(path))
    return verdict["result_id"]


def test_content_journaled_from_the_same_path_is_filed_without_a_second_verdict(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start_session()
    drop_dir = tmp_path / "drop"
    drop_dir.mkdir()
    crashed = drop_dir / "SN1.png"
    crashed.write_bytes(b"board one")
    ok_id = _journal_board(journal, crashed, "OK")
    failed = drop_dir / "SN3.png"
    failed.write_bytes(b"board three")
    error_id = _journal_board(journal, failed, "ERROR")
    again = drop_dir / "SN1-again.png"
    again.write_bytes(b"board one")
    new = drop_dir / "SN2.png"
    new.write_bytes(b"board two")

    def drop(path: Path) -> DropFile:
        data = path.read_bytes()
        return DropFile("cam1", path, hashlib.sha256(data).hexdigest(), data)

    assert file_if_seen(journal, drop(crashed))
    assert file_if_seen(journal, drop(failed))
    assert not file_if_seen(journal, drop(again))  # a repeat under a new name: its own verdict
    assert not file_if_seen(journal, drop(new))

    assert filed_path(drop_dir, "processed", ok_id, "SN1.png").read_bytes() == b"board one"
    assert filed_path(drop_dir, "failed", error_id, "SN3.png").read_bytes() == b"board three"
    assert not crashed.exists() and not failed.exists()
    assert again.is_file() and new.is_file()
    assert not (drop_dir / "duplicates").exists()
