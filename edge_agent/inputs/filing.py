"""Where handled inputs go: `<folder>/<outcome>/<day>/<result_id>_<name as filed>`.

The name is unique by construction (one result id per inspection), so filing never probes for a
free name. It is made by the product: the result id, then the original name rendered as bounded
UTF-8 (`inputs/names.py`), so any name a camera wrote (undecodable bytes, newlines, 255 bytes)
files; the reason file records the original name's exact bytes as a file URI. The day (UTC) is
the result id's own time, so a file's place follows from the journal alone. A file is filed by a
hard link and an unlink of the original: a watch on the drop folder sees a deletion, never a
move out of it (an unpaired move makes watchdog's inotify buffer hold every later event for its
pairing delay). A crash between the two leaves the same file in both places; filing it again
after the restart (`store/dedup.py`) finds the link made and removes the original.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path
from typing import Literal

import structlog

from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.verdict import result_id_ms
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inputs.names import filed_name, name_text

log = structlog.get_logger(__name__)

Outcome = Literal["processed", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("processed", "failed")
LEGACY_DUPLICATES = "duplicates"
"""Where older versions filed repeats of known content; only pruned now."""
REASON_SUFFIX = ".reason.txt"
SEPARATOR = "_"

# What a file system without hard links (FAT, some network shares) answers to one.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
"""Filing errors that are the disk's, not the input's: the board waits for space."""
_no_links: set[Path] = set()  # folders whose file system refused a hard link


def day_of(result_id: str) -> str:
    """The UTC day (YYYY-MM-DD) of a result id, the folder its input is filed under."""
    moment = dt.datetime.fromtimestamp(result_id_ms(result_id) / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%d")


def filed_path(folder: Path, outcome: str, result_id: str, name: str) -> Path:
    """Where the input `name` of `folder`, journaled as `result_id`, is filed."""
    return Path(folder) / outcome / day_of(result_id) / f"{result_id}{SEPARATOR}{filed_name(name)}"


def finish(drop: DropFile, outcome: Outcome, result_id: str, reason: str | None = None) -> Path:
    """File an input whose verdict is journaled; a failed one gets `<name>.reason.txt` beside."""
    if outcome == "failed" and not reason:
        reason = "failed without a recorded reason"
    target = filed_path(drop.path.parent, outcome, result_id, drop.path.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    _link_then_unlink(drop.path, target)
    if reason:
        note = (
            f"{name_text(reason)}\ncamera: {drop.camera}\nname: {name_text(drop.path.name)}\n"
            f"source: {drop.path.as_uri()}\nsha256: {drop.sha256}\nresult_id: {result_id}\n"
            f"filed_at: {utc_now()}\n"
        )
        target.with_name(target.name + REASON_SUFFIX).write_text(note, encoding="utf-8")
    return target


def file_or_leave(
    drop: DropFile, outcome: Outcome, result_id: str, reason: str | None = None
) -> Path | None:
    """`finish`, except that a fault of this one input's filing (a name the file system refuses,
    a permission) leaves it in the drop folder with a logged error instead of stopping the line:
    its verdict is journaled already. A full disk raises, for the board to wait for space."""
    try:
        return finish(drop, outcome, result_id, reason)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise
        log.error(
            "input has its verdict but could not be filed: left in the drop folder,"
            " move it away by hand",
            file=name_text(drop.path),
            result_id=result_id,
            error=name_text(str(exc)),
        )
        return None


def _link_then_unlink(source: Path, target: Path) -> None:
    if not os.path.lexists(source) and os.path.lexists(target):
        return  # moved by an earlier attempt that failed after it (writing the reason file)
    folder = source.parent
    if folder in _no_links:
        os.rename(source, target)
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        # Filed before a crash (the same inode), or the same content dropped again at the same
        # path and journaled under the same result id: the filed copy stays.
        pass
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        _no_links.add(folder)
        log.warning(
            "no hard links here: filing by rename (a watch then holds later events ~0.5 s)",
            folder=name_text(folder),
            error=name_text(str(exc)),
        )
        os.rename(source, target)
        return
    os.unlink(source)
