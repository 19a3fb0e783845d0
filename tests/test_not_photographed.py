"""Pixels that were never photographed never make a connector OK: a box partly out of frame,
a photo at another resolution. The models here call everything OK (their threshold is beyond
any score), so only the pipeline's own checks can keep such a board from being OK."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest
from onnx_fixtures import install_template_model

from edge_agent.contracts.config import StationConfig
from edge_agent.inspect.imaging import encode_png
from edge_agent.inspect.pipeline import InspectionResult, Inspector
from edge_agent.inspect.registration import Registrar
from edge_agent.inspect.scoring import ModelRegistry
from trainer.synth.scene import Station
from trainer.synth.variation import Shot

CONNECTORS = ("J1", "J5", "J9")  # J9 sits 122 px from the right edge of the 1280 px frame
EVERYTHING_OK = 1e6  # raw threshold above any template distance
BOARDS = 10


@pytest.fixture(scope="module")
def station() -> Station:
    return Station.build(0)


def config(station: Station, **registration: float) -> StationConfig:
    return StationConfig(
        connectors={cid: {"box": station.boxes[cid]} for cid in CONNECTORS},
        registration={"max_features": 1000, **registration},
    )


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory, station: Station) -> Inspector:
    return make_inspector(tmp_path_factory.mktemp("models"), station, config(station))


def make_inspector(models: Path, station: Station, settings: StationConfig) -> Inspector:
    reference = station.reference()
    for cid in CONNECTORS:
        x, y, w, h = station.boxes[cid]
        template = reference[y : y + h, x : x + w].astype(np.float32)
        install_template_model(models, cid, "2026-01-01.1", template, 8, EVERYTHING_OK)
    registry = ModelRegistry(models, list(CONNECTORS), threads=1)
    assert registry.load_all() == {}
    return Inspector(settings, registry, Registrar(reference, settings.registration))


def inspect(inspector: Inspector, image: np.ndarray, name: str) -> InspectionResult:
    return inspector.inspect(
        encode_png(image),
        camera="cam1",
        source_uri=(PurePosixPath("/srv/drop/cam1") / f"{name}.png").as_uri(),
        source_sha256="cd" * 32,
        part_id=None,
        captured_at=None,
    )


def rows(result: InspectionResult) -> dict[str, dict]:
    return {row["id"]: row for row in result.verdict["connectors"]}


def test_connector_partly_out_of_frame_is_not_decidable_and_named(
    station: Station, inspector: Inspector
) -> None:
    # 150 px right: within the 15 % shift limit, J9's box ends 28 px beyond the frame (14 %).
    photo = station.photo(np.random.default_rng(5), {}, shot=Shot(dx=150, noise=2.0))
    result = inspect(inspector, photo.image, "shifted")

    verdict = result.verdict
    assert verdict["evaluation"] == "NOT_DECIDABLE"
    j9 = rows(result)["J9"]
    assert (j9["evaluation"], j9["score"]) == ("NOT_DECIDABLE", None)
    assert "outside the photo" in j9["reason"] and "14%" in j9["reason"]
    assert verdict["error"]["stage"] == "crop" and verdict["error"]["message"].startswith("J9:")
    assert "J9" not in result.crops  # no crop of invented pixels is kept for retraining
    assert {rows(result)[cid]["evaluation"] for cid in ("J1", "J5")} == {"OK"}


def test_the_same_board_in_frame_is_ok(station: Station, inspector: Inspector) -> None:
    photo = station.photo(np.random.default_rng(5), {}, shot=Shot(dx=40, noise=2.0))
    assert inspect(inspector, photo.image, "in-frame").verdict["evaluation"] == "OK"


def test_outside_tolerance_is_configurable(tmp_path: Path, station: Station) -> None:
    tolerant = make_inspector(tmp_path, station, config(station, max_outside_fraction=0.2))
    photo = station.photo(np.random.default_rng(5), {}, shot=Shot(dx=150, noise=2.0))
    assert rows(inspect(tolerant, photo.image, "shifted"))["J9"]["evaluation"] == "OK"


def test_half_resolution_photos_are_never_ok(station: Station, inspector: Inspector) -> None:
    rng = np.random.default_rng(11)
    full, half = [], []
    for board in range(BOARDS):
        image = station.photo(rng, {}).image
        small = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), cv2.INTER_AREA)
        full.append(inspect(inspector, image, f"full-{board}").verdict)
        half.append(inspect(inspector, small, f"half-{board}").verdict)

    assert [v["evaluation"] for v in full] == ["OK"] * BOARDS
    assert [v["evaluation"] for v in half] == ["NOT_DECIDABLE"] * BOARDS
    for verdict in half:
        assert verdict["error"]["stage"] == "align"
        assert "0.50x its reference size" in verdict["error"]["message"]
        assert "photo 640x480 px, reference 1280x960 px" in verdict["error"]["message"]
        assert {row["evaluation"] for row in verdict["connectors"]} == {"NOT_DECIDABLE"}
