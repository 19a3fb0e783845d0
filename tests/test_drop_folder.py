"""The camera drop folder: backlog, renames, slow writers, polling and where handled files go."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.contracts.verdict import new_result_id
from edge_agent.inputs.drop_folder import DropFile, DropFolderWatcher
from edge_agent.inputs.filing import filed_path, finish

WAIT_S = 15.0
IN_MOVED_FROM, IN_DELETE = 0x40, 0x200  # <sys/inotify.h>


class Collector:
    """Records handed-over files; `wait_for(n)` blocks until n have arrived."""

    def __init__(self) -> None:
        self.files: list[DropFile] = []
        self._cond = threading.Condition()

    def __call__(self, drop: DropFile) -> None:
        with self._cond:
            self.files.append(drop)
            self._cond.notify_all()

    def wait_for(self, n: int) -> list[DropFile]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.files) >= n, timeout=WAIT_S)
            assert len(self.files) >= n, f"only {len(self.files)} of {n} files handed over"
            return list(self.files)

    @property
    def names(self) -> list[str]:
        with self._cond:
            return [drop.path.name for drop in self.files]


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def watchers() -> Iterator[list[DropFolderWatcher]]:
    started: list[DropFolderWatcher] = []
    yield started
    for watcher in started:
        watcher.stop()


def start(watchers: list[DropFolderWatcher], folder: Path, on_file, **kwargs) -> DropFolderWatcher:
    kwargs.setdefault("settle_s", 0.05)
    watcher = DropFolderWatcher("cam1", folder, on_file, **kwargs)
    watcher.start()
    watchers.append(watcher)
    return watcher


def test_backlog_is_handed_over_oldest_first(tmp_path, collector, watchers):
    folder = tmp_path / "cam1"
    folder.mkdir()
    for age, name in enumerate(["c.png", "a.png", "b.png"]):
        path = folder / name
        path.write_bytes(name.encode() * 10)
        os.utime(path, ns=(1_000_000_000 * (age + 1),) * 2)
    (folder / ".hidden.png").write_bytes(b"hidden")
    (folder / "late.tmp").write_bytes(b"in progress")

    watcher = start(watchers, folder, collector)
    files = collector.wait_for(3)

    assert [f.path.name for f in files] == ["c.png", "a.png", "b.png"]
    assert files[0].data == b"c.png" * 10
    assert files[0].sha256 == hashlib.sha256(b"c.png" * 10).hexdigest()
    assert files[0].camera == "cam1" and files[0].error is None
    assert watcher.is_alive()


def test_written_as_tmp_then_renamed_is_handed_over_once(tmp_path, collector, watchers):
    folder = tmp_path / "cam1"
    start(watchers, folder, collector)

    (folder / "SN1.png.tmp").write_bytes(b"board one")
    (folder / "SN1.png.tmp").rename(folder / "SN1.png")
    (folder / "SN2.png").write_bytes(b"board two")
    files = collector.wait_for(2)

    assert [f.path.name for f in files] == ["SN1.png", "SN2.png"]
    assert files[0].data == b"board one"


def test_hidden_partial_and_linked_files_are_ignored(tmp_path, collector, watchers):
    folder = tmp_path / "cam1"
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"not from the camera")
    start(watchers, folder, collector)

    (folder / ".SN1.png").write_bytes(b"hidden")
    (folder / "SN2.png.part").write_bytes(b"partial")
    (folder / "SN3.TMP").write_bytes(b"temporary")
    (folder / "link.png").symlink_to(outside)
    (folder / "subdir").mkdir()
    (folder / "SN4.png").write_bytes(b"real")
    collector.wait_for(1)

    assert collector.names == ["SN4.png"]


def test_slowly_written_file_is_handed_over_only_when_complete(tmp_path, collector, watchers):
    folder = tmp_path / "cam1"
    start(watchers, folder, collector, settle_s=0.6)
    chunk = bytes(range(256)) * 40

    with open(folder / "slow.png", "wb") as fh:
        for _ in range(40):
            fh.write(chunk)
            fh.flush()
            time.sleep(0.025)
    (folder / "after.png").write_bytes(b"next board")
    files = collector.wait_for(2)

    assert [f.path.name for f in files] == ["slow.png", "after.png"]
    assert files[0].data == chunk * 40


def test_polling_mode_sees_backlog_new_and_renamed_files(tmp_path, collector, watchers):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "old.png").write_bytes(b"backlog")
    start(watchers, folder, collector, poll=True, poll_interval_s=0.1)
    collector.wait_for(1)

    (folder / "new.png").write_bytes(b"new")
    collector.wait_for(2)
    (folder / "renamed.tmp").write_bytes(b"renamed")
    (folder / "renamed.tmp").rename(folder / "renamed.png")
    collector.wait_for(3)

    assert collector.names == ["old.png", "new.png", "renamed.png"]


def test_an_unreadable_file_is_retried_until_it_can_be_read(tmp_path, collector, watchers):
    folder = tmp_path / "cam1"
    folder.mkdir()
    locked = folder / "locked.png"
    locked.write_bytes(b"held by the camera")
    locked.chmod(0)
    if os.access(locked, os.R_OK):
        pytest.skip("this process reads files whatever their mode (root with CAP_DAC_OVERRIDE)")
    start(watchers, folder, collector)

    (folder / "next.png").write_bytes(b"next board")
    collector.wait_for(1)
    locked.chmod(0o644)
    files = collector.wait_for(2)

    assert [f.path.name for f in files] == ["next.png", "locked.png"]
    assert files[1].data == b"held by the camera"


def test_oversized_file_is_handed_over_with_an_error_and_no_data(tmp_path, collector, watchers):
    folder = tmp_path / "cam1"
    start(watchers, folder, collector, max_bytes=100)
    content = b"x" * 1000

    (folder / "huge.png").write_bytes(content)
    (drop,) = collector.wait_for(1)

    assert drop.data == b""
    assert "1000 bytes" in drop.error
    assert drop.sha256 == hashlib.sha256(content).hexdigest()


def test_a_new_file_under_a_finished_name_is_handed_over_again(tmp_path, watchers):
    folder = tmp_path / "cam1"
    collector = Collector()
    filed: list[Path] = []

    def handle(drop: DropFile) -> None:
        filed.append(finish(drop, "processed", new_result_id()))
        collector(drop)

    start(watchers, folder, handle)
    (folder / "image.png").write_bytes(b"first")
    collector.wait_for(1)
    (folder / "image.png").write_bytes(b"second")
    files = collector.wait_for(2)

    assert [f.data for f in files] == [b"first", b"second"]
    assert [p.read_bytes() for p in filed] == [b"first", b"second"]
    assert not (folder / "image.png").exists()


def test_a_failing_callback_does_not_stop_the_watcher(tmp_path, watchers):
    folder = tmp_path / "cam1"
    collector = Collector()

    def handle(drop: DropFile) -> None:
        collector(drop)
        if drop.path.name == "bad.png":
            raise RuntimeError("pipeline refused it")

    watcher = start(watchers, folder, handle)
    (folder / "bad.png").write_bytes(b"bad")
    collector.wait_for(1)
    (folder / "good.png").write_bytes(b"good")
    collector.wait_for(2)

    assert collector.names == ["bad.png", "good.png"]
    assert watcher.is_alive()
    watcher.stop()
    assert not watcher.is_alive()


def _drop(folder: Path, name: str, data: bytes) -> DropFile:
    path = folder / name
    path.write_bytes(data)
    return DropFile("cam1", path, hashlib.sha256(data).hexdigest(), data)


def test_finish_files_by_day_under_the_result_id_and_the_original_name(tmp_path):
    ids = [new_result_id() for _ in range(2)]
    processed = finish(_drop(tmp_path, "SN1.png", b"one"), "processed", ids[0])
    failed = finish(_drop(tmp_path, "SN2.png", b"two"), "failed", ids[1], "decode: not an image")

    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert processed == tmp_path / "processed" / day / f"{ids[0]}_SN1.png"
    assert processed == filed_path(tmp_path, "processed", ids[0], "SN1.png")
    assert processed.read_bytes() == b"one"
    assert not processed.with_name(processed.name + ".reason.txt").exists()
    assert failed == tmp_path / "failed" / day / f"{ids[1]}_SN2.png"
    reason = failed.with_name(failed.name + ".reason.txt").read_text()
    assert reason.startswith("decode: not an image\n")
    assert hashlib.sha256(b"two").hexdigest() in reason and ids[1] in reason
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == []


def test_a_failed_file_always_gets_a_reason_file(tmp_path):
    target = finish(_drop(tmp_path, "SN4.png", b"four"), "failed", new_result_id())

    assert target.with_name(target.name + ".reason.txt").read_text().strip() != ""


def test_a_thousand_files_of_one_name_are_filed_apart_without_looking_for_a_free_name(
    tmp_path, monkeypatch
):
    looked_up: list[Path] = []
    real_exists = Path.exists

    def exists(path: Path, **kwargs) -> bool:
        looked_up.append(path)
        return real_exists(path, **kwargs)

    monkeypatch.setattr(Path, "exists", exists)
    filed = [
        finish(_drop(tmp_path, "SN1.png", str(n).encode()), "processed", new_result_id())
        for n in range(1000)
    ]

    assert len(set(filed)) == 1000
    assert all(p.name.endswith("_SN1.png") for p in filed)
    assert [p.read_bytes() for p in filed] == [str(n).encode() for n in range(1000)]
    assert looked_up == []  # no probing: the name is unique by construction


def test_filing_again_after_a_crash_between_link_and_unlink_keeps_one_copy(tmp_path):
    drop = _drop(tmp_path, "SN1.png", b"one")
    result_id = new_result_id()
    target = filed_path(tmp_path, "processed", result_id, "SN1.png")
    target.parent.mkdir(parents=True)
    os.link(drop.path, target)  # the crash came before the unlink

    assert finish(drop, "processed", result_id) == target
    assert not drop.path.exists()
    assert target.read_bytes() == b"one"
    assert os.stat(target).st_nlink == 1


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "poll"])
def test_the_watch_does_not_recurse_into_handled_files(tmp_path, watchers, poll):
    folder = tmp_path / "cam1"
    collector = Collector()

    def handle(drop: DropFile) -> None:
        finish(drop, "processed", new_result_id())
        collector(drop)

    watcher = start(watchers, folder, handle, poll=poll, poll_interval_s=0.05)
    old = filed_path(folder, "failed", new_result_id(), "old.png")
    old.parent.mkdir(parents=True)
    old.write_bytes(b"quarantined before the start")
    for n in range(5):
        (folder / f"SN{n}.png").write_bytes(b"board %d" % n)
    collector.wait_for(5)
    (folder / "last.png").write_bytes(b"after the filing")
    collector.wait_for(6)

    emitters = list(watcher._observer.emitters)
    assert [e.watch.is_recursive for e in emitters] == [False]
    assert sorted(collector.names) == sorted([f"SN{n}.png" for n in range(5)] + ["last.png"])
    if poll:  # what a poll lists: the folder's own entries, nothing below processed/ or failed/
        listed = {Path(p) for p in emitters[0]._snapshot.paths}
        assert {p.parent for p in listed} <= {folder, folder.parent}
        assert folder / "processed" in listed


def _inotify_events(folder: Path, act: Callable[[], None]) -> list[tuple[int, str]]:
    """(mask, name) of every inotify event on `folder` while `act` runs, read from the kernel."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    if fd < 0 or libc.inotify_add_watch(fd, bytes(folder), IN_MOVED_FROM | IN_DELETE) < 0:
        pytest.skip("inotify is not available here")
    try:
        act()
        buffer = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                buffer += chunk
    finally:
        os.close(fd)
    events, offset = [], 0
    while offset < len(buffer):
        _, mask, _, length = struct.unpack_from("iIII", buffer, offset)
        name = buffer[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
        events.append((mask, name))
        offset += 16 + length
    return events


def test_filing_shows_the_watch_a_deletion_never_a_move_out_that_holds_later_events(tmp_path):
    # inotify reports a rename out of a watched folder as an unpaired IN_MOVED_FROM, which
    # watchdog holds for its pairing delay together with every event after it. Filing by a
    # link and an unlink gives the drop folder's watch one deletion per input and no move.
    drops = [_drop(tmp_path, f"SN{n}.png", b"board %d" % n) for n in range(20)]

    events = _inotify_events(
        tmp_path, lambda: [finish(d, "processed", new_result_id()) for d in drops]
    )

    assert [name for mask, name in events if mask & IN_MOVED_FROM] == []
    assert sorted(name for mask, name in events if mask & IN_DELETE) == sorted(
        d.path.name for d in drops
    )


def test_where_hard_links_are_refused_inputs_are_filed_by_rename(tmp_path, monkeypatch):
    # A FAT or SMB share (mocked: no such file system is mounted here) answers EPERM.
    def no_hard_links(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    filed = [
        finish(_drop(tmp_path, f"SN{n}.png", b"board %d" % n), "processed", new_result_id())
        for n in range(2)
    ]

    assert [p.read_bytes() for p in filed] == [b"board 0", b"board 1"]
    assert not any(p.is_file() for p in tmp_path.iterdir())
