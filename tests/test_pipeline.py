"""One board image through decode, registration, cropping and real ONNX scoring to a verdict."""

from __future__ import annotations

from pathlib import PurePosixPath

import cv2
import numpy as np
import pytest
from onnx_fixtures import install_template_model

from edge_agent.contracts.config import DriftSettings, StationConfig
from edge_agent.inspect.capture import MEASURES
from edge_agent.inspect.imaging import encode_png
from edge_agent.inspect.pipeline import InspectionResult, Inspector
from edge_agent.inspect.registration import Registrar
from edge_agent.inspect.scoring import ModelRegistry

PREFIX = "plant/line3/aoi2"
BOXES = {"J1": (40, 40, 64, 48), "J2": (200, 120, 80, 60), "J3": (330, 230, 60, 60)}
MAP_SIZE = 16
RAW_THRESHOLD = 30.0  # aligned OK crops stay below ~6, a painted-over connector reaches ~200


def textured_reference(width: int = 480, height: int = 360) -> np.ndarray:
    """A board-like image: many coloured rectangles and discs, slightly blurred."""
    rng = np.random.default_rng(3)
    image = np.full((height, width, 3), 90, np.uint8)
    for _ in range(400):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            corner = (x + int(rng.integers(4, 30)), y + int(rng.integers(4, 30)))
            cv2.rectangle(image, (x, y), corner, colour, -1)
        else:
            cv2.circle(image, (x, y), int(rng.integers(2, 14)), colour, -1)
    return cv2.GaussianBlur(image, (0, 0), 1.5)


def photograph(reference: np.ndarray, dx: float = 6, dy: float = -4, degrees: float = 1.5) -> bytes:
    """The board as the camera sees it: shifted and rotated a little, PNG-encoded."""
    height, width = reference.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    matrix[:, 2] += (dx, dy)
    moved = cv2.warpAffine(reference, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    return encode_png(moved)


def station_config(connectors: dict, heatmaps_for_ok: bool = False) -> StationConfig:
    return StationConfig(
        station={"name": "line3/aoi2"},
        connectors={cid: {"box": box} for cid, box in connectors.items()},
        mqtt={"prefix": PREFIX, "heatmaps_for_ok": heatmaps_for_ok},
    )


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return textured_reference()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, reference: np.ndarray) -> ModelRegistry:
    root = tmp_path_factory.mktemp("models")
    for cid, (x, y, w, h) in BOXES.items():
        template = reference[y : y + h, x : x + w].astype(np.float32)
        install_template_model(root, cid, "2026-01-01.1", template, MAP_SIZE, RAW_THRESHOLD)
    registry = ModelRegistry(root, [*BOXES, "J4"], threads=1)
    assert registry.load_all().keys() == {"J4"}
    return registry


@pytest.fixture(scope="module")
def registrar(reference: np.ndarray) -> Registrar:
    return Registrar(reference, station_config(BOXES).registration)


@pytest.fixture(scope="module")
def inspector(registry: ModelRegistry, registrar: Registrar) -> Inspector:
    return Inspector(station_config(BOXES), registry, registrar)


def inspect(inspector: Inspector, data: bytes, name: str = "SN000123.png") -> InspectionResult:
    return inspector.inspect(
        data,
        camera="cam1",
        source_uri=(PurePosixPath("/srv/drop/cam1") / name).as_uri(),
        source_sha256="ab" * 32,
        part_id=None,
        captured_at="2026-09-01T10:15:00.123Z",
    )


def rows(result: InspectionResult) -> dict[str, dict]:
    return {row["id"]: row for row in result.verdict["connectors"]}


def test_photos_read_the_focus_and_the_light_in_turn_and_every_photo_the_pose(
    registry: ModelRegistry, registrar: Registrar, reference: np.ndarray
) -> None:
    """The focus on every `focus_every_boards`th photo, the light (brightness and contrast) on
    every `light_every_boards`th, halfway between; with 1, on every photo."""
    config = station_config(BOXES)
    photo = photograph(reference)
    focus, light, none = {"sharpness"}, {"brightness", "contrast"}, set()
    both = focus | light
    for every, pattern in (
        ((4, 4), [focus, none, light, none, focus]),
        ((2, 2), [focus, light, focus, light]),
        ((3, 1), [both, light, light, both]),
        ((1, 1), [both] * 3),
    ):
        drift = DriftSettings(focus_every_boards=every[0], light_every_boards=every[1])
        inspector = Inspector(config.model_copy(update={"drift": drift}), registry, registrar)
        read = []
        for _ in pattern:
            capture = inspect(inspector, photo).capture
            assert capture is not None and set(MEASURES) - set(capture) <= both
            read.append(set(capture) & both)
        assert read == pattern


def test_good_board_is_ok(inspector: Inspector, reference: np.ndarray) -> None:
    result = inspect(inspector, photograph(reference))

    verdict = result.verdict
    assert verdict["evaluation"] == "OK"
    assert (result.failed_stage, result.error, result.heatmaps) == (None, None, {})
    assert "error" not in verdict
    assert verdict["part_id"] == "SN000123"
    assert verdict["station"] == "line3/aoi2" and verdict["camera"] == "cam1"
    assert verdict["source"] == {"uri": "file:///srv/drop/cam1/SN000123.png", "sha256": "ab" * 32}
    assert set(verdict["processing_ms"]) == {"decode", "align", "infer", "total"}
    stages = verdict["processing_ms"]
    assert result.capture is not None  # the capture measures were taken: inside the total
    assert stages["total"] >= stages["decode"] + stages["align"] + stages["infer"] - 2  # rounding
    for cid, row in rows(result).items():
        assert row["evaluation"] == "OK" and row["score"] < 0.5
        assert row["model"]["version"] == "2026-01-01.1"
        assert "heatmap_topic" not in row
        assert result.crops[cid].shape == (BOXES[cid][3], BOXES[cid][2], 3)
        assert result.scores[cid].score == pytest.approx(row["score"], abs=1e-4)


def test_connector_painted_over_is_nok_with_a_heatmap(
    inspector: Inspector, reference: np.ndarray
) -> None:
    covered = reference.copy()
    x, y, w, h = BOXES["J2"]
    covered[y : y + h, x : x + w] = (20, 200, 20)

    result = inspect(inspector, photograph(covered, dx=-9, dy=5, degrees=-2.0))

    verdict = result.verdict
    assert verdict["evaluation"] == "NOK"
    by_id = rows(result)
    assert by_id["J2"]["evaluation"] == "NOK" and by_id["J2"]["score"] > 3
    assert by_id["J2"]["heatmap_topic"] == f"{PREFIX}/heatmap/{verdict['result_id']}/J2"
    assert by_id["J1"]["evaluation"] == by_id["J3"]["evaluation"] == "OK"
    assert list(result.heatmaps) == ["J2"]
    overlay = cv2.imdecode(np.frombuffer(result.heatmaps["J2"], np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == (h, w, 3)


def test_ok_heatmaps_only_when_configured(
    registry: ModelRegistry, registrar: Registrar, reference: np.ndarray
) -> None:
    inspector = Inspector(station_config(BOXES, heatmaps_for_ok=True), registry, registrar)

    result = inspect(inspector, photograph(reference))

    assert result.verdict["evaluation"] == "OK"
    assert sorted(result.heatmaps) == sorted(BOXES)
    assert all(row["heatmap_topic"].endswith(row["id"]) for row in rows(result).values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG"),
        (b"definitely not an image", "unsupported image format"),
    ],
    ids=["zero-bytes", "corrupt-png", "garbage"],
)
def test_undecodable_bytes_are_an_error_at_decode(
    inspector: Inspector, data: bytes, message: str
) -> None:
    result = inspect(inspector, data)

    verdict = result.verdict
    assert verdict["evaluation"] == "ERROR"
    assert result.failed_stage == "decode" and verdict["error"]["stage"] == "decode"
    assert message in verdict["error"]["message"]
    assert {row["evaluation"] for row in verdict["connectors"]} == {"ERROR"}
    assert result.crops == {} and result.scores == {} and result.heatmaps == {}


def test_truncated_photo_is_an_error_at_decode(inspector: Inspector, reference: np.ndarray) -> None:
    data = photograph(reference)

    result = inspect(inspector, data[: len(data) // 2])

    assert (result.verdict["evaluation"], result.failed_stage) == ("ERROR", "decode")


def test_unrelated_image_is_not_decidable_at_align(inspector: Inspector) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (360, 480, 3), dtype=np.uint8)

    result = inspect(inspector, encode_png(noise))

    verdict = result.verdict
    assert verdict["evaluation"] == "NOT_DECIDABLE"
    assert result.failed_stage == "align" and verdict["error"]["stage"] == "align"
    assert {row["evaluation"] for row in verdict["connectors"]} == {"NOT_DECIDABLE"}
    assert all(row["score"] is None for row in verdict["connectors"])


def test_connector_without_a_model_makes_the_board_an_error(
    registry: ModelRegistry, registrar: Registrar, reference: np.ndarray
) -> None:
    config = station_config({**BOXES, "J4": (100, 250, 40, 40)})
    inspector = Inspector(config, registry, registrar)

    result = inspect(inspector, photograph(reference))

    verdict = result.verdict
    by_id = rows(result)
    assert verdict["evaluation"] == "ERROR"
    assert by_id["J4"] == {
        "id": "J4",
        "evaluation": "ERROR",
        "score": None,
        "threshold": None,
        "model": None,
        "reason": "no model loaded",
    }
    assert all(by_id[cid]["evaluation"] == "OK" for cid in BOXES)
    assert verdict["error"] == {"stage": "infer", "message": "J4: no model loaded"}


def test_disabled_connector_is_left_out(
    registry: ModelRegistry, registrar: Registrar, reference: np.ndarray
) -> None:
    config = station_config({**BOXES, "J4": (100, 250, 40, 40)})
    config.connectors["J4"].enabled = False
    inspector = Inspector(config, registry, registrar)

    result = inspect(inspector, photograph(reference), name="board 7#a.png")

    assert result.verdict["evaluation"] == "OK"
    assert sorted(rows(result)) == sorted(BOXES)
    assert result.verdict["part_id"] == "board_7_a"


def test_part_id_given_wins_and_other_sources_have_none(
    inspector: Inspector, reference: np.ndarray
) -> None:
    data = photograph(reference)
    common = {"camera": "cam1", "source_sha256": "00", "captured_at": None}

    given = inspector.inspect(
        data, source_uri="file:///drop/x.png", part_id="SN9", **common
    ).verdict
    from_mqtt = inspector.inspect(
        data, source_uri=f"mqtt://{PREFIX}/image/cam1", part_id=None, **common
    ).verdict

    assert given["part_id"] == "SN9"
    assert from_mqtt["part_id"] is None and from_mqtt["captured_at"] is None
