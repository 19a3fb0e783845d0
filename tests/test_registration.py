"""Registration of board photos to the reference, and the crops cut through it."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from edge_agent.contracts.config import ConnectorSettings, RegistrationSettings
from edge_agent.inspect.cropping import crop_all, crop_connector
from edge_agent.inspect.registration import Registrar, Registration, RegistrationError
from trainer.synth.scene import Station
from trainer.synth.variation import Shot

SETTINGS = RegistrationSettings(max_features=1000)


@pytest.fixture(scope="module")
def station() -> Station:
    return Station.build(0)


@pytest.fixture(scope="module")
def reference(station: Station) -> np.ndarray:
    return station.reference()


@pytest.fixture(scope="module")
def registrar(reference: np.ndarray) -> Registrar:
    return Registrar(reference, SETTINGS)


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def box_corners(boxes: dict[str, tuple[int, int, int, int]]) -> np.ndarray:
    return np.array(
        [
            (x + dx, y + dy, 1.0)
            for x, y, w, h in boxes.values()
            for dx in (0, w - 1)
            for dy in (0, h - 1)
        ]
    )


def worst_corner_error(station: Station, registration: Registration, truth: np.ndarray) -> float:
    corners = box_corners(station.boxes)
    return float(np.linalg.norm(corners @ (registration.matrix - truth).T, axis=1).max())


@pytest.mark.parametrize(
    "shot",
    [
        Shot(dx=30, dy=-22, angle_deg=2.0, noise=2.0, blur=0.5),
        Shot(dx=-41, dy=35, angle_deg=-3.5, noise=2.0),
        Shot(dx=12.4, dy=7.7, angle_deg=0.3, gain=0.55, gradient=(0.5, -0.3), noise=9.0, blur=2.5),
        Shot(dx=-8, dy=-30, angle_deg=5.0, gain=1.45, vignette=0.2, tint=(1.1, 0.95, 0.88)),
    ],
    ids=["shift-rotate", "large-shift", "dark-noisy-blurred", "bright-tinted-rotated"],
)
def test_recovers_known_pose_within_half_a_pixel_on_every_crop_corner(
    station: Station, registrar: Registrar, shot: Shot
) -> None:
    photo = station.photo(np.random.default_rng(7), {}, shot=shot)
    registration = registrar.register(jpeg_round_trip(photo.image))
    assert worst_corner_error(station, registration, photo.truth) < 0.5
    true_rotation = math.degrees(math.atan2(photo.truth[1, 0], photo.truth[0, 0]))
    assert registration.rotation_deg == pytest.approx(true_rotation, abs=0.05)
    assert registration.shift_px == pytest.approx(math.hypot(shot.dx, shot.dy), abs=1.0)
    assert registration.quality > SETTINGS.min_quality
    assert registration.inliers >= SETTINGS.min_inliers


def test_board_with_every_connector_covered_or_missing_still_registers(
    station: Station, registrar: Registrar
) -> None:
    defects = {"J1": "occluded", "J2": "missing", "J3": "occluded", "J5": "wrong_part"}
    defects |= {"J6": "missing", "J9": "occluded"}
    photo = station.photo(np.random.default_rng(3), defects, "severe")
    registration = registrar.register(jpeg_round_trip(photo.image))
    assert worst_corner_error(station, registration, photo.truth) < 0.5


@pytest.mark.parametrize("seed", [1, 2])
def test_photo_of_another_board_is_refused(registrar: Registrar, seed: int) -> None:
    other = Station.build(seed)
    with pytest.raises(RegistrationError):
        registrar.register(other.photo(np.random.default_rng(seed), {}).image)


def test_noise_blank_and_black_images_are_refused(registrar: Registrar) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (960, 1280, 3), dtype=np.uint8)
    for image in (noise, cv2.GaussianBlur(noise, (0, 0), 3), np.full_like(noise, 128)):
        with pytest.raises(RegistrationError):
            registrar.register(image)
    with pytest.raises(RegistrationError, match="features"):
        registrar.register(np.zeros_like(noise))


def test_rotation_beyond_the_limit_is_refused_with_the_angle(
    reference: np.ndarray, registrar: Registrar
) -> None:
    turn = cv2.getRotationMatrix2D((640, 480), 12, 1.0)
    turned = cv2.warpAffine(reference, turn, (1280, 960), borderMode=cv2.BORDER_REPLICATE)
    with pytest.raises(RegistrationError, match=r"rotation -12\.0° beyond 8°"):
        registrar.register(turned)


def test_blank_reference_is_refused() -> None:
    with pytest.raises(RegistrationError, match="reference"):
        Registrar(np.full((480, 640, 3), 90, np.uint8), SETTINGS)


def test_two_threads_get_the_same_answers_as_one(station: Station, registrar: Registrar) -> None:
    rng = np.random.default_rng(11)
    photos = [jpeg_round_trip(station.photo(rng, {}, "mild").image) for _ in range(4)]
    alone = [registrar.register(image).matrix for image in photos]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda image: registrar.register(image).matrix, photos * 2))
    for index, matrix in enumerate(together):
        np.testing.assert_array_equal(matrix, alone[index % len(photos)])


def identity(dx: float = 0.0, dy: float = 0.0) -> Registration:
    return Registration(np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), 1.0, 100, 0.0, 0.0)


def test_crop_is_box_sized_and_cut_where_the_registration_puts_the_box() -> None:
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    crop = crop_connector(image, identity(), (50, 60, 70, 40))
    assert crop.shape == (40, 70, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, image[60:100, 50:120])
    moved = crop_connector(image, identity(dx=7, dy=-5), (50, 60, 70, 40))
    np.testing.assert_array_equal(moved, image[55:95, 57:127])


def test_crop_beyond_the_image_replicates_the_border() -> None:
    image = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    crop = crop_connector(image, identity(), (80, 90, 30, 20))
    assert crop.shape == (20, 30, 3)
    np.testing.assert_array_equal(crop[-1, -1], image[-1, -1])


def test_crop_all_cuts_enabled_connectors_only(station: Station) -> None:
    image = station.reference()
    connectors = {cid: ConnectorSettings(box=box) for cid, box in station.boxes.items()}
    connectors["J4"] = ConnectorSettings(box=station.boxes["J4"], enabled=False)
    crops = crop_all(image, identity(), connectors)
    assert set(crops) == set(station.boxes) - {"J4"}
    for cid, crop in crops.items():
        _, _, w, h = station.boxes[cid]
        assert crop.shape == (h, w, 3)
