"""Image decoding: every accepted format becomes 8-bit BGR; anything else is a DecodeError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.inspect.imaging import DecodeError, decode_image, read_image_file

MAX_BYTES = 5_000_000
MAX_PIXELS = 40_000_000


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


def decode(data: bytes) -> np.ndarray:
    return decode_image(data, MAX_BYTES, MAX_PIXELS)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims width x height gray pixels; a few rows of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", rows)
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture
def colour() -> np.ndarray:
    """A BGR image whose channels differ, so a channel swap would show."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image[:, :, 0] //= 4  # blue darker than red: BGR vs RGB would be visible
    return image


def test_png_decodes_to_the_same_bgr_pixels(colour: np.ndarray) -> None:
    image = decode(encode(colour))

    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    np.testing.assert_array_equal(image, colour)


def test_jpeg_decodes_to_bgr_close_to_the_original(colour: np.ndarray) -> None:
    smooth = cv2.GaussianBlur(colour, (0, 0), 3)
    image = decode(encode(smooth, ".jpg"))

    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    error = np.abs(image.astype(int) - smooth.astype(int)).mean(axis=(0, 1))
    assert (error < 6).all()  # per channel: a swapped B/R would be far off


def test_grayscale_png_becomes_three_equal_channels() -> None:
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1))

    image = decode(encode(gray))

    assert image.shape == (10, 64, 3) and image.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray)


def test_rgba_png_drops_alpha(colour: np.ndarray) -> None:
    alpha = np.full((48, 64, 1), 77, np.uint8)

    image = decode(encode(np.concatenate([colour, alpha], axis=2)))

    assert image.shape == (48, 64, 3)
    np.testing.assert_array_equal(image, colour)


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_png_becomes_8_bit(channels: int) -> None:
    high = np.linspace(0, 65535, 40 * 30, dtype=np.uint16).reshape(30, 40)
    source = high if channels == 1 else np.dstack([high] * 3)

    image = decode(encode(source))

    assert image.dtype == np.uint8 and image.shape == (30, 40, 3)
    np.testing.assert_array_equal(image[:, :, 1], (high >> 8).astype(np.uint8))


def test_empty_bytes_are_refused() -> None:
    with pytest.raises(DecodeError, match="empty"):
        decode(b"")


def test_oversize_byte_count_is_refused_before_decoding(colour: np.ndarray) -> None:
    data = encode(colour)

    with pytest.raises(DecodeError, match=f"{len(data)} bytes exceeds the limit of 1000"):
        decode_image(data, max_bytes=1000, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("cut", [0.5, 0.99], ids=["half", "last-bytes"])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_images_are_refused(colour: np.ndarray, ext: str, cut: float) -> None:
    data = encode(colour, ext)

    with pytest.raises(DecodeError, match=r"truncated|corrupt"):
        decode(data[: int(len(data) * cut)])


@pytest.mark.parametrize("length", [20, 100])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_cut_inside_its_header_is_refused(colour: np.ndarray, ext: str, length: int) -> None:
    with pytest.raises(DecodeError, match=r"truncated|corrupt"):
        decode(encode(colour, ext)[:length])


def test_random_bytes_are_refused() -> None:
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()

    with pytest.raises(DecodeError, match="unsupported image format"):
        decode(noise)


def test_png_bomb_is_refused_from_its_header() -> None:
    bomb = png_bomb(100_000, 100_000)
    assert len(bomb) < 2000  # tiny file, 10 gigapixels claimed

    with pytest.raises(DecodeError, match="100000x100000 pixels exceeds the limit of 40000000"):
        decode(bomb)


def test_a_header_within_the_pixel_limit_passes_the_header_check() -> None:
    """The same crafted file with a modest size decodes, so the bomb was refused for its size."""
    image = decode(png_bomb(16, 4))

    assert image.shape == (4, 16, 3)
    assert not image.any()


def test_jpeg_bomb_is_refused_from_its_header(colour: np.ndarray) -> None:
    data = bytearray(encode(colour, ".jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)

    with pytest.raises(DecodeError, match="60000x60000 pixels exceeds the limit"):
        decode(bytes(data))


def test_zero_size_header_is_refused() -> None:
    with pytest.raises(DecodeError, match="0x4"):
        decode(png_bomb(0, 4))


def test_read_image_file_decodes_a_file(tmp_path: Path, colour: np.ndarray) -> None:
    path = tmp_path / "crop.png"
    cv2.imwrite(str(path), colour)

    np.testing.assert_array_equal(read_image_file(path), colour)


def test_read_image_file_errors_name_the_file(tmp_path: Path, colour: np.ndarray) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(encode(colour, ".jpg")[:300])
    missing = tmp_path / "missing.png"

    for path, reason in [(empty, "empty"), (truncated, "corrupt|truncated"), (missing, "cannot")]:
        with pytest.raises(DecodeError, match=reason) as error:
            read_image_file(path)
        assert str(error.value).startswith(f"{path}: ")
