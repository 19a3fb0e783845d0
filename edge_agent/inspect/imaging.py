"""Image decoding with limits: bytes in, 8-bit BGR out, or a DecodeError that says why."""

from __future__ import annotations

import os
import struct
from pathlib import Path

# OpenCV's own ceiling on decoded pixels; our header check below is the stricter one.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))

import cv2
import numpy as np

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class DecodeError(ValueError):
    """The bytes are not an image this station can inspect."""


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding; None for other formats."""
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise DecodeError("truncated PNG header")
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise DecodeError(f"corrupt JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            pos += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise DecodeError("JPEG without a frame header (truncated?)")


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGRA, 16-bit, float) as contiguous 8-bit 3-channel BGR."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        scaled = np.clip(image.astype(np.float32), 0, 1 if image.max() <= 1.0 else 255)
        factor = 255.0 if scaled.max() <= 1.0 else 1.0
        image = (scaled * factor).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.shape[2] == 1:
        image = cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image)


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode PNG/JPEG bytes to 8-bit BGR, refusing empty, oversized and bomb-sized inputs."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise DecodeError(f"{len(data)} bytes exceeds the limit of {max_bytes}")
    size = header_size(data)
    if size is not None:
        width, height = size
        if width == 0 or height == 0:
            raise DecodeError(f"image header says {width}x{height}")
        if width * height > max_pixels:
            raise DecodeError(f"{width}x{height} pixels exceeds the limit of {max_pixels}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DecodeError("not a decodable image (corrupt or unsupported format)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise DecodeError(f"{image.shape[1]}x{image.shape[0]} pixels exceeds {max_pixels}")
    if data.startswith(_PNG_MAGIC) and not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        raise DecodeError("truncated PNG (no IEND chunk)")
    if data.startswith(b"\xff\xd8") and b"\xff\xd9" not in data[-64:]:
        raise DecodeError("truncated JPEG (no end-of-image marker)")
    return to_bgr8(image)


def read_image_file(path: Path, max_bytes: int = 200_000_000, max_pixels: int = 100_000_000):
    """Read and decode an image file; DecodeError messages name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DecodeError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return decode_image(data, max_bytes, max_pixels)
    except DecodeError as exc:
        raise DecodeError(f"{path}: {exc}") from None


def encode_png(image: np.ndarray, compression: int = 1) -> bytes:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()
