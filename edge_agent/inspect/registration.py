"""Board registration: the affine that carries the station's reference image onto a photo.

Coarse: ORB features of a downscaled copy matched to the reference's (computed once) and a
RANSAC similarity. Fine: distinctive reference patches found again at full resolution by
normalised cross-correlation, to a fraction of a pixel. Last, a check that the aligned photo
really looks like the reference, so a wrong board or a blank frame is refused.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.contracts.config import RegistrationSettings

_RATIO = 0.85  # Lowe's ratio test on the two nearest descriptors
_RANSAC_PX = 2.5  # coarse reprojection tolerance, working pixels
_FAST_THRESHOLD = 12
_LEVELS = 3  # a fixed camera needs little scale invariance; fewer levels are faster
_QUALITY_SIGMA = 4.0  # band-pass of the quality check, half-working pixels
_PATCHES = 48  # reference patches for the fine step
_PATCH_RADIUS = 12  # patch is (2r+1) pixels square, full resolution
_SEARCH = 4  # fine search reach around the coarse estimate, pixels
_MIN_PATCH_NCC = 0.5
_FINE_RANSAC_PX = 1.0
LEVEL_ROW_STEP = 16  # `gray_level`: every 16th row of the working image


class RegistrationError(RuntimeError):
    """The photo cannot be aligned to the reference; the message says why."""


@dataclass(frozen=True)
class Registration:
    """Where the reference lies in a photo: `matrix` maps reference pixels to image pixels."""

    matrix: np.ndarray
    quality: float
    inliers: int
    rotation_deg: float
    shift_px: float
    inlier_share: float = 1.0
    """Share of the plausible feature matches that agree on the placement."""
    residual_px: float = 0.0
    """RMS distance of the agreeing matches from the placement, full-size pixels."""
    scale: float = 1.0
    gray_level: tuple[float, float] | None = None
    """The photo's gray-level mean and sd (`gray_level`; the capture's brightness and contrast);
    None when the light was not read on this photo."""
    gray_level_cpu_seconds: float = 0.0
    gray_full: np.ndarray | None = None
    """The photo in gray at full size (the capture's focus patch is read from it; not a copy)."""


@dataclass(frozen=True)
class _Frame:
    """An image in gray at full size and at working size, with the affine between them."""

    full: np.ndarray
    work: np.ndarray
    to_work: np.ndarray  # 3x3: full-size pixels -> working pixels
    level: tuple[float, float] | None  # `gray_level(work)`, taken while `work` is in the cache
    level_cpu_seconds: float

    @classmethod
    def of(cls, image_bgr: np.ndarray, working_width: int, light: bool = False) -> _Frame:
        """The frame of a BGR image; its gray level only with `light`."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise RegistrationError(f"expected an 8-bit BGR image, got {image_bgr.shape}")
        height, width = image_bgr.shape[:2]
        full = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        work = full
        if width > working_width:
            size = (working_width, max(1, round(height * working_width / width)))
            work = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        level, level_cpu_seconds = None, 0.0
        if light:
            cpu_started = time.thread_time()
            level = gray_level(work)
            level_cpu_seconds = time.thread_time() - cpu_started
        sx, sy = work.shape[1] / width, work.shape[0] / height
        # Pixel centres: working pixel i covers full-size pixels around (i + 0.5) / s - 0.5.
        to_work = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        return cls(full, work, to_work, level, level_cpu_seconds)


def gray_level(work: np.ndarray) -> tuple[float, float]:
    """Mean and sd of a working-size gray image over every `LEVEL_ROW_STEP`th row (~50k
    pixels): what the drift monitor calls brightness and contrast. Read right after the image
    is made (a few microseconds; the same rows read later, from memory, cost ten times more)."""
    mean, sd = cv2.meanStdDev(work[::LEVEL_ROW_STEP])
    return float(mean[0, 0]), float(sd[0, 0])


def _features(gray: np.ndarray, max_features: int) -> tuple[np.ndarray, np.ndarray | None]:
    orb = cv2.ORB_create(nfeatures=max_features, nlevels=_LEVELS, fastThreshold=_FAST_THRESHOLD)
    keypoints, descriptors = orb.detectAndCompute(gray, None)
    points = np.array([kp.pt for kp in keypoints], np.float32).reshape(-1, 2)
    return points, descriptors


def _band_pass(gray: np.ndarray) -> np.ndarray:
    """Structure without the lighting: the image minus its blur, at half working scale."""
    small = cv2.pyrDown(gray).astype(np.float32)
    return small - cv2.GaussianBlur(small, (0, 0), _QUALITY_SIGMA)


def _peak_offset(scores: np.ndarray) -> tuple[float, float] | None:
    """Sub-pixel position of the correlation peak relative to the centre; None if weak."""
    _, best, _, (px, py) = cv2.minMaxLoc(scores)
    last = scores.shape[0] - 1
    if best < _MIN_PATCH_NCC or not (0 < px < last and 0 < py < last):
        return None

    def vertex(left: float, mid: float, right: float) -> float:
        curvature = left - 2 * mid + right
        return 0.5 * (left - right) / curvature if curvature < 0 else 0.0

    dx = vertex(scores[py, px - 1], best, scores[py, px + 1])
    dy = vertex(scores[py - 1, px], best, scores[py + 1, px])
    return px + dx - _SEARCH, py + dy - _SEARCH


def _similarity(src: np.ndarray, dst: np.ndarray, tolerance: float) -> tuple[np.ndarray, int]:
    matrix, mask, _ = _similarity_fit(src, dst, tolerance)
    return matrix, int(mask.sum()) if mask is not None else 0


def _similarity_fit(
    src: np.ndarray, dst: np.ndarray, tolerance: float
) -> tuple[np.ndarray | None, np.ndarray | None, float]:
    """RANSAC similarity, its inlier mask and the RMS residual of the inliers."""
    matrix, mask = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=tolerance,
        maxIters=2000,
        confidence=0.999,
        refineIters=20,
    )
    if matrix is None or mask is None or not mask.any():
        return matrix, mask, 0.0
    inside = mask.ravel().astype(bool)
    moved = src[inside] @ matrix[:, :2].T + matrix[:, 2]
    residual = float(np.sqrt(np.mean(np.sum((moved - dst[inside]) ** 2, axis=1))))
    return matrix, mask, residual


class Registrar:
    """Registers board photos to one reference image; safe to share between threads."""

    def __init__(self, reference_bgr: np.ndarray, settings: RegistrationSettings) -> None:
        self.settings = settings
        self._reference = _Frame.of(reference_bgr, settings.working_width)
        self._size = reference_bgr.shape[1], reference_bgr.shape[0]
        self._points, self._descriptors = _features(self._reference.work, settings.max_features)
        if self._descriptors is None or len(self._points) < settings.min_inliers:
            raise RegistrationError(
                f"the reference image has only {len(self._points)} features "
                f"(need at least {settings.min_inliers}): is it blank or out of focus?"
            )
        self._structure = _band_pass(self._reference.work)
        self._patches = self._pick_patches()

    @property
    def reference_size(self) -> tuple[int, int]:
        """The reference image's width and height in pixels."""
        return self._size

    def _pick_patches(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Distinctive reference patches spread over the image: (centre, pixels) pairs."""
        gray = self._reference.full
        reach = _PATCH_RADIUS + _SEARCH + 2
        inner = np.zeros_like(gray)
        inner[reach:-reach, reach:-reach] = 1
        corners = cv2.goodFeaturesToTrack(
            gray, _PATCHES, 0.01, min(gray.shape) / 8, mask=inner, blockSize=7
        )
        r = _PATCH_RADIUS
        return [
            (np.array([x, y]), gray[y - r : y + r + 1, x - r : x + r + 1])
            for x, y in (np.rint(corners).astype(int).reshape(-1, 2) if corners is not None else [])
        ]

    def register(self, image_bgr: np.ndarray, light: bool = False) -> Registration:
        """Align a photo to the reference, or raise RegistrationError saying why not; with
        `light`, its gray level (the capture's brightness and contrast) is taken on the way
        (only the agent's drift monitor reads it)."""
        settings = self.settings
        frame = _Frame.of(image_bgr, settings.working_width, light)
        work, inliers, share, residual = self._coarse(frame)
        # Scale in full-resolution pixels: both frames are resized to the working width, so
        # the working-scale affine cannot see a photo taken at another resolution.
        coarse = (np.linalg.inv(frame.to_work) @ _rows3(work) @ self._reference.to_work)[:2]
        self._check_scale(coarse, image_bgr.shape)
        matrix = self._fine(frame.full, coarse)
        rotation = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
        if abs(rotation) > settings.max_rotation_deg:
            raise RegistrationError(
                f"rotation {rotation:.1f}° beyond {settings.max_rotation_deg:g}°"
            )
        height, width = image_bgr.shape[:2]
        centre = matrix @ [(self._size[0] - 1) / 2, (self._size[1] - 1) / 2, 1.0]
        shift = math.hypot(centre[0] - (width - 1) / 2, centre[1] - (height - 1) / 2)
        if shift > settings.max_shift_fraction * width:
            raise RegistrationError(
                f"shift {shift:.0f} px beyond {settings.max_shift_fraction:.0%} of the width "
                f"({settings.max_shift_fraction * width:.0f} px)"
            )
        quality = self._quality(frame, matrix)
        if quality < settings.min_quality:
            raise RegistrationError(
                f"aligned image matches the reference poorly (quality {quality:.2f} < "
                f"{settings.min_quality:g}): another board or a bad photo?"
            )
        return Registration(
            matrix,
            quality,
            inliers,
            rotation,
            shift,
            inlier_share=share,
            residual_px=residual * frame.full.shape[1] / frame.work.shape[1],
            scale=math.hypot(matrix[0, 0], matrix[1, 0]),
            gray_level=frame.level,
            gray_level_cpu_seconds=frame.level_cpu_seconds,
            gray_full=frame.full,
        )

    def _check_scale(self, matrix: np.ndarray, shape: tuple[int, ...]) -> None:
        """A fixed camera sees the board at the reference's size; refuse any other scale."""
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        limit = self.settings.max_scale_change
        if abs(scale - 1.0) > limit:
            raise RegistrationError(
                f"the board appears {scale:.2f}x its reference size (photo {shape[1]}x{shape[0]}"
                f" px, reference {self._size[0]}x{self._size[1]} px, limit ±{limit:.0%}): "
                "another camera, resolution or board?"
            )

    def _coarse(self, frame: _Frame) -> tuple[np.ndarray, int, float, float]:
        """RANSAC similarity from reference to image from ORB matches, at working scale, with
        its inlier count, the inliers' share of the plausible matches and their RMS residual."""
        settings = self.settings
        points, descriptors = _features(frame.work, settings.max_features)
        if descriptors is None or len(points) < settings.min_inliers:
            raise RegistrationError(
                f"only {len(points)} features in the image (need {settings.min_inliers}): "
                "blank, dark or out of focus?"
            )
        pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(descriptors, self._descriptors, k=2)
        matches = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
        image_idx = np.array([m.queryIdx for m in matches], np.int64)
        ref_idx = np.array([m.trainIdx for m in matches], np.int64)
        src, dst = self._points[ref_idx], points[image_idx]
        # A match farther than the largest allowed shift and rotation can carry it is wrong.
        height, width = frame.work.shape
        reach = settings.max_shift_fraction * width + math.sin(
            math.radians(settings.max_rotation_deg)
        ) * 0.5 * math.hypot(width, height)
        near = np.linalg.norm(dst - src, axis=1) <= 1.2 * reach
        src, dst = src[near], dst[near]
        if len(src) < settings.min_inliers:
            raise RegistrationError(
                f"only {len(src)} plausible feature matches (need {settings.min_inliers}): "
                "another board, or a bad photo?"
            )
        work, mask, residual = _similarity_fit(src, dst, _RANSAC_PX)
        inliers = int(mask.sum()) if mask is not None else 0
        if work is None or inliers < settings.min_inliers:
            raise RegistrationError(
                f"only {inliers} of {len(src)} matches agree on one placement "
                f"(need {settings.min_inliers}): another board, or a bad photo?"
            )
        return work, inliers, inliers / len(src), residual

    def _fine(self, gray: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        """Refine at full resolution from the patches found again near where `coarse` puts them.

        Keeps `coarse` when too few patches agree (much of the board covered, say).
        """
        reach = _PATCH_RADIUS + _SEARCH
        size = 2 * reach + 1
        src, dst = [], []
        for centre, patch in self._patches:
            window = coarse.copy()
            window[:, 2] = coarse @ (*(centre - reach), 1.0)
            seen = cv2.warpAffine(
                gray,
                window,
                (size, size),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            offset = _peak_offset(cv2.matchTemplate(seen, patch, cv2.TM_CCOEFF_NORMED))
            if offset is not None:
                src.append(centre)
                dst.append(coarse @ (centre[0] + offset[0], centre[1] + offset[1], 1.0))
        if len(src) < max(6, len(self._patches) // 4):
            return coarse
        fine, agreeing = _similarity(np.float32(src), np.float32(dst), _FINE_RANSAC_PX)
        return fine if fine is not None and agreeing >= max(6, len(src) // 2) else coarse

    def _quality(self, frame: _Frame, matrix: np.ndarray) -> float:
        """Normalised correlation of the band-passed reference and the aligned photo."""
        work = (frame.to_work @ _rows3(matrix) @ np.linalg.inv(self._reference.to_work))[:2]
        height, width = self._reference.work.shape
        flags = cv2.WARP_INVERSE_MAP
        aligned = cv2.warpAffine(
            frame.work,
            work,
            (width, height),
            flags=cv2.INTER_LINEAR | flags,
            borderMode=cv2.BORDER_REPLICATE,
        )
        inside = cv2.warpAffine(
            np.full_like(frame.work, 255), work, (width, height), flags=cv2.INTER_NEAREST | flags
        )
        margin = int(3 * _QUALITY_SIGMA)
        inside = cv2.erode(cv2.pyrDown(inside), np.ones((margin, margin), np.uint8)) == 255
        if inside.sum() < 0.25 * inside.size:
            return 0.0
        ref, img = self._structure[inside], _band_pass(aligned)[inside]
        denom = math.sqrt(float(np.dot(ref, ref)) * float(np.dot(img, img)))
        return max(0.0, float(np.dot(ref, img)) / denom) if denom > 0 else 0.0


def _rows3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])
