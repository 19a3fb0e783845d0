"""Fuzzing image decoding and the inspection of one image (hypothesis).

Arbitrary bytes, valid PNG/JPEG/BMP/TIFF images truncated or bit-flipped, headers that declare
huge sizes (decompression bombs) and unusual channel counts and bit depths: `decode_image`
returns 8-bit BGR within the limits or raises a DecodeError that says why; `Inspector.inspect`
(real registration, real onnxruntime models) never raises and never says OK for an image it
could not decode.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import PurePosixPath

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx_fixtures import install_template_model
from PIL import Image
from test_pipeline import BOXES as PIPELINE_BOXES
from test_pipeline import (
    MAP_SIZE,
    RAW_THRESHOLD,
    photograph,
    station_config,
    textured_reference,
)

from edge_agent.contracts.verdict import ERROR, NOK, NOT_DECIDABLE, OK
from edge_agent.inspect.imaging import DecodeError, decode_image
from edge_agent.inspect.pipeline import Inspector
from edge_agent.inspect.registration import Registrar
from edge_agent.inspect.scoring import ModelRegistry

MAX_BYTES = 2_000_000
MAX_PIXELS = 40_000  # small, so that modest generated sizes are already bombs
SUPPORTED = "PNG, JPEG, BMP or TIFF"
# Two of the pipeline tests' connectors: their exported models are shared (cached) with them.
BOXES = {cid: PIPELINE_BOXES[cid] for cid in ("J1", "J2")}
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pil(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _cv(image: np.ndarray, ext: str) -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


def _samples() -> dict[str, bytes]:
    """Small valid images of every supported format in many channel layouts and bit depths."""
    rng = np.random.default_rng(7)
    colour = cv2.GaussianBlur(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (3, 3), 0)
    gray = colour[:, :, 1].copy()
    wide = (colour.astype(np.uint16) * 257)[:, :, :]
    rgb = Image.fromarray(colour[:, :, ::-1].copy())
    samples = {
        "png": _cv(colour, ".png"),
        "png-gray": _cv(gray, ".png"),
        "png-bgra": _cv(np.dstack([colour, gray]), ".png"),
        "png-16": _cv(wide, ".png"),
        "png-16-gray": _cv(wide[:, :, 0].copy(), ".png"),
        "png-la": _pil(rgb.convert("LA"), "PNG"),
        "png-palette": _pil(rgb.convert("P"), "PNG"),
        "png-1bit": _pil(rgb.convert("1"), "PNG"),
        "jpeg": _cv(colour, ".jpg"),
        "jpeg-gray": _cv(gray, ".jpg"),
        "jpeg-progressive": _pil(rgb, "JPEG", progressive=True),
        "jpeg-cmyk": _pil(rgb.convert("CMYK"), "JPEG"),
        "bmp": _cv(colour, ".bmp"),
        "bmp-gray": _cv(gray, ".bmp"),
        "bmp-palette": _pil(rgb.convert("P"), "BMP"),
        "bmp-1bit": _pil(rgb.convert("1"), "BMP"),
        "tiff": _cv(colour, ".tiff"),
        "tiff-16": _cv(wide, ".tiff"),
        "tiff-float": _cv(colour.astype(np.float32) / 255, ".tiff"),
        "tiff-la": _pil(rgb.convert("LA"), "TIFF"),
        "tiff-int32": _pil(rgb.convert("I"), "TIFF"),
        "tiff-1bit": _pil(rgb.convert("1"), "TIFF"),
        "tiff-cmyk": _pil(rgb.convert("CMYK"), "TIFF", compression="tiff_lzw"),
        "tiff-deflate": _pil(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-big-endian": _pil(rgb.convert("I;16B"), "TIFF"),
    }
    return samples


SAMPLES = _samples()
OTHER_FORMATS = {
    "webp": _pil(Image.new("RGB", (32, 24), (10, 200, 30)), "WEBP"),
    "gif": _pil(Image.new("P", (32, 24)), "GIF"),
    "ppm": _pil(Image.new("RGB", (32, 24)), "PPM"),
}


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray | None:
    """Decode; assert the result is proper BGR within limits, or the refusal says why."""
    try:
        image = decode_image(data, MAX_BYTES, max_pixels)
    except DecodeError as exc:
        assert str(exc).strip(), "a DecodeError without a message"
        return None
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, image.shape
    assert image.flags.c_contiguous
    assert 0 < image.shape[0] * image.shape[1] <= max_pixels
    return image


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A valid image truncated, bit-flipped, overwritten, with bytes inserted or removed."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        # Most damage in the first bytes, where headers and their sizes live.
        end = max(len(data) - 1, 0)
        pos = draw(st.one_of(st.integers(0, min(64, end)), st.integers(0, end)))
        kind = draw(st.sampled_from(["flip", "byte", "cut", "insert", "delete"]))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


# Headers that declare a size (decompression bombs): a tiny file, width x height claimed.
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(SAMPLES["jpeg"])
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    size = width * abs(height) * 3
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, size & 0xFFFFFFFF, 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info + b"\x00" * 256


def tiff_claiming(width: int, height: int) -> bytes:
    """A little-endian TIFF, one uncompressed gray strip of 64 bytes."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, 64)]  # fmt: skip
    strip = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = strip if tag == 273 else value
        field = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + field
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00\x00\x00\x00" + b"\x80" * 64


CLAIMING = {"png": png_claiming, "jpeg": jpeg_claiming, "bmp": bmp_claiming, "tiff": tiff_claiming}


@st.composite
def compressed_bomb(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A real, fully decodable compressed image that may be larger than MAX_PIXELS."""
    width, height = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    fmt = draw(st.sampled_from(["PNG", "TIFF", "JPEG", "BMP"]))
    options = {"compression": "tiff_adobe_deflate"} if fmt == "TIFF" else {}
    return _pil(Image.new("L", (width, height)), fmt, **options), width, height


@settings(FUZZ, max_examples=2500)
@given(data=st.one_of(st.binary(max_size=512), mutated(list(SAMPLES.values()))))
def test_broken_images_decode_to_bgr_or_are_refused_with_a_reason(data: bytes) -> None:
    decode(data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_supported_layout_and_depth_decodes_to_bgr(name: str) -> None:
    image = decode(SAMPLES[name])

    assert image is not None, name
    assert image.shape[:2] == (24, 32)


@settings(FUZZ, max_examples=1300)
@given(
    fmt=st.sampled_from(sorted(CLAIMING)),
    width=st.integers(0, 65_535),
    height=st.integers(0, 65_535),
)
def test_a_declared_size_beyond_the_limit_is_refused_from_the_header(
    fmt: str, width: int, height: int
) -> None:
    data = CLAIMING[fmt](width, height)

    if width * height > MAX_PIXELS:
        with pytest.raises(DecodeError, match=f"{width}x{height} pixels exceeds the limit"):
            decode_image(data, MAX_BYTES, MAX_PIXELS)
    elif width == 0 or height == 0:
        with pytest.raises(DecodeError, match=f"{width}x{height}"):
            decode_image(data, MAX_BYTES, MAX_PIXELS)
    else:
        decode(data)


@settings(FUZZ, max_examples=300)
@given(bomb=compressed_bomb())
def test_a_compressed_image_beyond_the_limit_is_refused_before_decoding(
    bomb: tuple[bytes, int, int],
) -> None:
    data, width, height = bomb

    if width * height > MAX_PIXELS:
        with pytest.raises(DecodeError, match=f"{width}x{height} pixels exceeds the limit"):
            decode_image(data, MAX_BYTES, MAX_PIXELS)
    else:
        image = decode(data)
        assert image is not None and image.shape[:2] == (height, width)


@pytest.mark.parametrize("fmt", sorted(CLAIMING))
def test_a_gigapixel_claim_is_refused_at_the_station_limit(fmt: str) -> None:
    """At the default limit: refused from the header, before any pixel memory is allocated."""
    with pytest.raises(DecodeError, match="60000x60000 pixels exceeds the limit of 40000000"):
        decode_image(CLAIMING[fmt](60_000, 60_000), MAX_BYTES, 40_000_000)


@pytest.mark.parametrize("name", sorted(OTHER_FORMATS))
def test_other_formats_are_refused_by_name(name: str) -> None:
    """Formats without a header check here could be decompression bombs: refused."""
    with pytest.raises(DecodeError, match=f"unsupported image format.*{SUPPORTED}"):
        decode_image(OTHER_FORMATS[name], MAX_BYTES, MAX_PIXELS)


# -- the whole inspection of one image --------------------------------------------------------
@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    """The pipeline with real registration and real template-distance ONNX models."""
    reference = textured_reference()
    root = tmp_path_factory.mktemp("models")
    for cid, (x, y, w, h) in BOXES.items():
        template = reference[y : y + h, x : x + w].astype(np.float32)
        install_template_model(root, cid, "2026-01-01.1", template, MAP_SIZE, RAW_THRESHOLD)
    registry = ModelRegistry(root, list(BOXES), threads=1)
    assert registry.load_all() == {}
    config = station_config(BOXES)
    return Inspector(config, registry, Registrar(reference, config.registration))


def _photos() -> list[bytes]:
    png = photograph(textured_reference())
    board = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return [png, _cv(board, ".jpg"), _cv(board, ".bmp"), _cv(board, ".tiff")]


PHOTOS = _photos()


@settings(FUZZ, max_examples=500)
@given(
    data=st.one_of(
        st.binary(max_size=1024),
        mutated(PHOTOS),
        st.sampled_from(PHOTOS),
        st.builds(png_claiming, st.integers(0, 100_000), st.integers(0, 100_000)),
        st.builds(tiff_claiming, st.integers(0, 100_000), st.integers(0, 100_000)),
    )
)
def test_inspect_never_raises_and_never_says_ok_for_an_undecodable_image(
    inspector: Inspector, data: bytes
) -> None:
    limits = inspector.config.limits
    result = inspector.inspect(
        data,
        camera="cam1",
        source_uri=(PurePosixPath("/srv/drop/cam1") / "SN1.png").as_uri(),
        source_sha256="ab" * 32,
        part_id=None,
        captured_at="2026-09-01T10:15:00.123Z",
    )

    verdict = result.verdict
    rows = verdict["connectors"]
    event(verdict["evaluation"])
    assert verdict["evaluation"] in (OK, NOK, ERROR, NOT_DECIDABLE)
    assert [row["id"] for row in rows] == list(BOXES)
    try:
        decode_image(data, limits.max_file_bytes, limits.max_pixels)
    except DecodeError as exc:
        assert verdict["evaluation"] == ERROR
        assert verdict["error"] == {"stage": "decode", "message": str(exc)}
        assert all(row["evaluation"] == ERROR and row["score"] is None for row in rows)
        return
    if verdict["evaluation"] in (OK, NOK):
        assert result.error is None and all(row["evaluation"] in (OK, NOK) for row in rows)
    else:
        assert result.error and verdict["error"]["message"] == result.error
