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
_TIFF_MAGIC = {b"II*\x00": False, b"MM\x00*": False, b"II+\x00": True, b"MM\x00+": True}
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257
_TIFF_UNSIGNED = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8: the types a size may have
FORMATS = "PNG, JPEG, BMP or TIFF"


class DecodeError(ValueError):
    """The bytes are not an image this station can inspect."""


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG, JPEG, BMP or TIFF header, without decoding.

    Any other format is refused: without a header check its decoder could allocate the pixels
    of whatever size the file claims (a decompression bomb).
    """
    try:
        if data.startswith(_PNG_MAGIC):
            if len(data) < 24 or data[12:16] != b"IHDR":
                raise DecodeError("truncated PNG header")
            return struct.unpack_from(">II", data, 16)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"BM"):
            return _bmp_size(data)
        if data[:4] in _TIFF_MAGIC:
            return _tiff_size(data)
    except (struct.error, OverflowError):  # an offset past the end of the data
        raise DecodeError("truncated image header") from None
    raise DecodeError(f"unsupported image format (the station reads {FORMATS})")


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


def _bmp_size(data: bytes) -> tuple[int, int]:
    """BITMAPCOREHEADER (12 bytes: 16-bit sizes) or a later info header (32-bit, signed)."""
    (info_size,) = struct.unpack_from("<I", data, 14)
    width, height = struct.unpack_from("<HH" if info_size == 12 else "<ii", data, 18)
    return abs(width), abs(height)  # a negative height is a top-down bitmap


def _tiff_size(data: bytes) -> tuple[int, int]:
    """Width and length of the first image (the one decoded) of a TIFF or BigTIFF."""
    order = "<" if data[:2] == b"II" else ">"
    big = _TIFF_MAGIC[data[:4]]
    if big:
        (offset,) = struct.unpack_from(order + "Q", data, 8)
        (count,) = struct.unpack_from(order + "Q", data, offset)
        first, entry, value_at = offset + 8, 20, 12
    else:
        (offset,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, offset)
        first, entry, value_at = offset + 2, 12, 8
    size: dict[int, int] = {}
    for pos in range(first, first + count * entry, entry):
        tag, kind = struct.unpack_from(order + "HH", data, pos)  # struct.error past the end
        if tag in (_TIFF_WIDTH, _TIFF_LENGTH):
            if kind not in _TIFF_UNSIGNED:
                raise DecodeError(f"TIFF image size tag {tag} of unexpected type {kind}")
            (size[tag],) = struct.unpack_from(order + _TIFF_UNSIGNED[kind], data, pos + value_at)
            if len(size) == 2:
                return size[_TIFF_WIDTH], size[_TIFF_LENGTH]
    raise DecodeError("TIFF without an image width and length")


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, gray + alpha, BGRA, 16-bit, float) as contiguous 8-bit BGR."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        values = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        scaled = np.clip(values, 0, 1 if values.max() <= 1.0 else 255)
        factor = 255.0 if scaled.max() <= 1.0 else 1.0
        image = (scaled * factor).astype(np.uint8)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels in (1, 2):  # gray, or gray + alpha
        image = cv2.cvtColor(image if image.ndim == 2 else image[:, :, 0], cv2.COLOR_GRAY2BGR)
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif channels != 3:
        raise DecodeError(f"{channels} channels per pixel (1 to 4 are read)")
    return np.ascontiguousarray(image)


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode PNG, JPEG, BMP or TIFF bytes to 8-bit BGR, refusing empty, oversized, bomb-sized
    (checked in the header, before decoding) and other inputs."""
    if not data:
        raise DecodeError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise DecodeError(f"{len(data)} bytes exceeds the limit of {max_bytes}")
    width, height = header_size(data)
    if width == 0 or height == 0:
        raise DecodeError(f"image header says {width}x{height}")
    if width * height > max_pixels:
        raise DecodeError(f"{width}x{height} pixels exceeds the limit of {max_pixels}")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV's own checks (sizes, corrupt streams) raise
        raise DecodeError(f"not a decodable image ({exc.err})") from None
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
