"""The MQTT image spool: image messages written durably into `<state>/inbox/<camera>/`.

An image acknowledged to the broker is on disk (file and folder fsync'd) before the
acknowledgement; the inbox watcher of its camera then takes it by the same path as a camera's
file, so de-duplication and quarantine work the same for both. Only declared cameras have an
inbox (made once, at start): an image for any other camera is refused, never given a folder.

A spooled file is named `<part id>@<delivery key>-<unique id>`, the delivery key being the
content hash and the MQTT packet id. When the broker resends a message (DUP flag) whose first
delivery was spooled but not acknowledged (the agent was killed between the two), the key
finds that first copy, pending in the inbox or already journaled, and the resend is
acknowledged without a second inspection. A message sent again on purpose has no DUP flag:
it is a new input with its own verdict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from edge_agent.contracts.atomic import write_bytes_atomic
from edge_agent.contracts.verdict import new_result_id, safe_part_id
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.ops.storage import free_bytes

log = structlog.get_logger()

SEPARATOR = "@"
MQTT_CAMERA = "mqtt:"
"""Prefix of a spooled camera's watcher name (the camera `cam1` is watched as `mqtt:cam1`)."""


def unwrap(payload: bytes, properties: dict) -> tuple[bytes, str | None]:
    """The image bytes and part id of a message: raw bytes, or a JSON envelope with base64."""
    part_id = safe_part_id(properties.get("part_id"))
    data = payload
    if payload[:1] == b"{":
        try:
            envelope = json.loads(payload)
            part_id = safe_part_id(envelope.get("part_id")) or part_id
            data = base64.b64decode(envelope["image"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            data = payload  # kept as it came; decoding fails and quarantines it
    return data, part_id


class ImageSpool:
    """Writes image messages of the declared cameras into their inbox folders.

    `refused(reason)` counts a message refused: `unknown_camera` (acknowledged: a redelivery
    would be refused again), `spool_failed` or `disk_low` (left unacknowledged, so the broker
    redelivers). `journal_floor` (the journal's folder, bytes): while the inbox shares that
    folder's filesystem and it has less free, the spool takes nothing: that room is the journal's.
    """

    def __init__(
        self,
        inbox: Path,
        cameras: Iterable[str],
        refused: Callable[[str], None],
        journaled: Callable[[str, str], bool],
        journal_floor: tuple[Path, int] | None = None,
    ) -> None:
        """`journaled(sha256, path_prefix)`: whether an inspection of that content was read
        from a spooled file whose path starts with `path_prefix`; `journal_floor`: the
        journal's folder and the free bytes kept for it on a shared filesystem."""
        self.inbox = inbox
        self._folders = {camera: inbox / camera for camera in cameras}
        self._refused = refused
        self._journaled = journaled
        self._journal_floor = journal_floor

    def folders(self) -> dict[str, Path]:
        """Make the declared cameras' inbox folders; by watcher name (`mqtt:<camera>`)."""
        for folder in self._folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        for other in sorted(self.inbox.iterdir()):
            if other.is_dir() and other.name not in self._folders:
                log.warning(
                    "inbox of an undeclared camera not watched",
                    folder=str(other),
                    declare_in="inputs.cameras",
                )
        return {f"{MQTT_CAMERA}{camera}": folder for camera, folder in self._folders.items()}

    def on_message(
        self,
        topic: str,
        payload: bytes,
        properties: dict,
        packet_id: int = 0,
        redelivered: bool = False,
    ) -> bool:
        """MQTT handler of `<prefix>/image/<camera>`; True: acknowledge, False: do not (yet)."""
        camera = topic.rsplit("/", 1)[-1]
        folder = self._folders.get(camera)
        if folder is None:
            log.warning(
                "mqtt image refused: unknown camera",
                camera=camera[:64],
                declared=sorted(self._folders),
                declare_in="inputs.cameras",
            )
            self._refused("unknown_camera")
            return True
        if self._below_journal_floor(folder):
            self._refused("disk_low")
            return False
        data, part_id = unwrap(payload, properties)
        sha = hashlib.sha256(data).hexdigest()
        key = f"{part_id or ''}{SEPARATOR}{sha[:24]}-{packet_id}-"
        if redelivered and self._taken_before(folder, key, sha):
            log.info("mqtt image resent by the broker: already taken", camera=camera,
                     part_id=part_id, packet_id=packet_id)  # fmt: skip
            return True
        try:
            write_bytes_atomic(folder / f"{key}{new_result_id()}", data)
        except OSError as exc:
            log.error(
                "mqtt image not spooled: left unacknowledged for redelivery",
                camera=camera,
                folder=str(folder),
                error=str(exc),
            )
            self._refused("spool_failed")
            return False
        return True

    def _taken_before(self, folder: Path, key: str, sha: str) -> bool:
        """A first copy of this delivery is waiting in the inbox or was journaled.

        The inbox is looked at first: a copy is moved out of it only after its verdict is
        journaled, so one of the two looks finds it."""
        if any(folder.glob(f"{key}*")):
            return True
        return self._journaled(sha, str(folder / key))

    def _below_journal_floor(self, folder: Path) -> bool:
        if self._journal_floor is None:
            return False
        journal_dir, floor = self._journal_floor
        try:
            shared = os.stat(folder).st_dev == os.stat(journal_dir).st_dev
            free = free_bytes(folder)
        except OSError:  # the write below fails and says why
            return False
        if shared and free < floor:
            log.warning(
                "mqtt image not spooled: the journal's disk is below its floor; left for "
                "redelivery",
                folder=str(folder),
                free_bytes=free,
                floor=floor,
            )
            return True
        return False


def describe(drop: DropFile, spooled: bool, prefix: str) -> tuple[str | None, str, str]:
    """Part id, source URI and capture time of an input file (spooled or from a camera)."""
    stem = drop.path.name
    if spooled:
        part_id = safe_part_id(stem.split(SEPARATOR, 1)[0])
        uri = f"mqtt://{prefix}/image/{drop.camera}"
    else:
        part_id = safe_part_id(Path(stem).stem)
        uri = drop.path.as_uri()
    return part_id, uri, _mtime_iso(drop.path)


def _mtime_iso(path: Path) -> str:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        stamp = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"
