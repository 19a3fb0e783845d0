"""Pictures for the pages: board photos aligned to the reference, kept crops, crop previews and
the reference's own crop of each connector.

Only files the station itself names are read: the reference image of the config, a board's
photo where the agent filed it (the journal's source path, below a drop folder or the MQTT
inbox, with the journal's sha256), and crops below `<state>/crops`. A request names a result
id or a connector, never a path.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.console.cache import LruCache
from edge_agent.contracts.config import StationConfig
from edge_agent.inputs.filing import LEGACY_DUPLICATES, OUTCOMES, filed_path
from edge_agent.inspect.cropping import crop_connector
from edge_agent.inspect.imaging import DecodeError, encode_png, read_image_file
from edge_agent.inspect.registration import Registrar, Registration, RegistrationError
from edge_agent.store.crop_store import CROPS_DIR

LEGACY_FOLDERS = (*OUTCOMES, LEGACY_DUPLICATES)
DISPLAY_WIDTH = 1280
JPEG_QUALITY = 85
MAX_BOX_SIDE = 4096


class ImageUnavailable(LookupError):
    """The picture cannot be shown; the message says why, in words for the page."""


def encode_jpeg(image: np.ndarray, width: int = DISPLAY_WIDTH) -> bytes:
    """A display copy: at most `width` pixels wide, JPEG."""
    if image.shape[1] > width:
        height = round(image.shape[0] * width / image.shape[1])
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ImageUnavailable("the image could not be encoded")
    return data.tobytes()


def _inside(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in roots)


class BoardImages:
    """Finds, aligns and cuts a station's pictures; caches registrations and display copies."""

    def __init__(self, config: StationConfig) -> None:
        self.config = config
        self._registrar: Registrar | None = None
        self._reference: np.ndarray | None = None
        self._lock = threading.Lock()
        self._registrations = LruCache(64)
        self._displays = LruCache(32)

    @property
    def photo_roots(self) -> list[Path]:
        """Folders a board photo may come from: the drop folders and the MQTT inbox."""
        return [*self.config.inputs.drop_folders.values(), self.config.paths.state / "inbox"]

    def reference(self) -> np.ndarray:
        """The station's reference image (read once)."""
        with self._lock:
            if self._reference is None:
                try:
                    self._reference = read_image_file(self.config.station.reference_image)
                except DecodeError as exc:
                    raise ImageUnavailable(f"reference image unreadable: {exc}") from None
            return self._reference

    def reference_size(self) -> tuple[int, int]:
        """(width, height) of the reference image."""
        height, width = self.reference().shape[:2]
        return width, height

    def _registrar_for(self) -> Registrar:
        reference = self.reference()
        with self._lock:
            if self._registrar is None:
                self._registrar = Registrar(reference, self.config.registration)
            return self._registrar

    def photo_path(self, record: dict[str, Any]) -> Path:
        """Where the agent filed the board's photo; its content must match the journal."""
        source = record.get("source_path")
        if not source:
            raise ImageUnavailable("the journal names no photo file for this board")
        source = Path(source)
        if not _inside(source.parent, self.photo_roots):
            raise ImageUnavailable("the photo lies outside the station's input folders")
        result_id = record["result_id"]
        for candidate in (
            *(filed_path(source.parent, outcome, result_id, source.name) for outcome in OUTCOMES),
            source,
            # filed flat by versions before the day folders
            *(source.parent / folder / source.name for folder in LEGACY_FOLDERS),
        ):
            if candidate.is_file() and not candidate.is_symlink():
                digest = hashlib.sha256(candidate.read_bytes()).hexdigest()
                if digest == record.get("source_sha256"):
                    return candidate
        raise ImageUnavailable("the board photo is no longer on disk")

    def photo(self, record: dict[str, Any]) -> np.ndarray:
        try:
            return read_image_file(self.photo_path(record))
        except DecodeError as exc:
            raise ImageUnavailable(f"the photo cannot be decoded: {exc}") from None

    def registration(self, record: dict[str, Any]) -> Registration:
        """The board's alignment to the reference (computed again, cached)."""

        def register() -> Registration | str:
            try:
                return self._registrar_for().register(self.photo(record))
            except RegistrationError as exc:
                return str(exc)

        found = self._registrations.get(("reg", record["result_id"]), register)
        if isinstance(found, str):
            raise ImageUnavailable(f"the board could not be aligned: {found}")
        return found

    def board_jpeg(self, record: dict[str, Any]) -> tuple[bytes, bool]:
        """The photo in the reference frame (boxes fit) and True, or as taken and False."""

        def render() -> tuple[bytes, bool]:
            photo = self.photo(record)
            try:
                registration = self.registration(record)
            except ImageUnavailable:
                return encode_jpeg(photo), False
            width, height = self.reference_size()
            aligned = cv2.warpAffine(
                photo,
                registration.matrix,
                (width, height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
            )
            return encode_jpeg(aligned), True

        return self._displays.get(("board", record["result_id"]), render)

    def reference_jpeg(self) -> bytes:
        return self._displays.get(("reference",), lambda: encode_jpeg(self.reference()))

    def reference_crop(self, box: tuple[int, int, int, int]) -> bytes:
        """PNG of `box` cut from the reference image: what the connector looks like when right."""
        x, y, width, height = box
        ref_width, ref_height = self.reference_size()
        if x < 0 or y < 0 or x + width > ref_width or y + height > ref_height:
            raise ImageUnavailable("the box is not inside the reference image")
        return encode_png(self.reference()[y : y + height, x : x + width])

    def kept_crop(self, record: dict[str, Any], connector: str) -> np.ndarray:
        """The crop the agent kept for this board and connector."""
        relative = record.get("crops", {}).get(connector)
        if relative is None:
            raise ImageUnavailable(f"no crop of {connector} was kept for this board")
        root = self.config.paths.state / CROPS_DIR
        path = root / relative
        if not _inside(path, [root]) or not path.is_file():
            raise ImageUnavailable(f"the kept crop of {connector} is no longer on disk")
        try:
            return read_image_file(path)
        except DecodeError as exc:
            raise ImageUnavailable(f"the kept crop cannot be decoded: {exc}") from None

    def preview(self, record: dict[str, Any], box: tuple[int, int, int, int]) -> bytes:
        """PNG of `box` (reference pixels) cut from the board exactly as the agent cuts it."""
        x, y, width, height = box
        ref_width, ref_height = self.reference_size()
        if not (0 < width <= MAX_BOX_SIDE and 0 < height <= MAX_BOX_SIDE):
            raise ImageUnavailable(f"box size {width}x{height} is out of range")
        if x < 0 or y < 0 or x + width > ref_width or y + height > ref_height:
            raise ImageUnavailable("the box is not inside the reference image")
        crop = crop_connector(self.photo(record), self.registration(record), box)
        return encode_png(crop)
