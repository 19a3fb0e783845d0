"""One board image in, one verdict out: decode, register, crop, score, heatmaps; no I/O."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

import numpy as np
import structlog

from edge_agent.contracts.config import StationConfig
from edge_agent.contracts.verdict import (
    ERROR,
    NOK,
    NOT_DECIDABLE,
    OK,
    ConnectorOutcome,
    Evaluation,
    Failure,
    build_verdict,
    new_result_id,
    safe_part_id,
)
from edge_agent.inspect.capture import capture_measures, reads
from edge_agent.inspect.cropping import check_boxes, crop_all, outside_the_photo
from edge_agent.inspect.heatmap import overlay_heatmap
from edge_agent.inspect.imaging import DecodeError, decode_image, encode_png
from edge_agent.inspect.registration import Registrar, Registration, RegistrationError
from edge_agent.inspect.scoring import ConnectorModel, ConnectorScore, ModelRegistry

log = structlog.get_logger()


@dataclass
class InspectionResult:
    """The verdict plus what the agent keeps or publishes beside it."""

    verdict: dict
    heatmaps: dict[str, bytes]
    crops: dict[str, np.ndarray]
    scores: dict[str, ConnectorScore]
    failed_stage: str | None
    error: str | None
    capture: dict[str, float] | None = None
    """The photo's capture measures (`inspect/capture.py`), None when it was not registered."""
    capture_seconds: float = 0.0
    """Time spent on the capture measures (the `capture` stage of the metrics)."""
    capture_cpu_seconds: float = 0.0
    """The inspection thread's CPU time for them (the drift monitor's cost on the board)."""


@dataclass
class _Stages:
    """Times each stage and turns its exception into the board's first Failure."""

    ms: dict[str, float] = field(
        default_factory=lambda: {"decode": 0.0, "align": 0.0, "infer": 0.0}
    )
    failure: Failure | None = None

    @contextmanager
    def run(
        self,
        stage: str,
        timer: str | None = None,
        expected: tuple[type[Exception], Evaluation] | None = None,
    ) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            if expected is not None and isinstance(exc, expected[0]):
                self.failure = Failure(stage, str(exc), expected[1])
            else:
                log.exception("stage_failed", stage=stage)
                self.failure = Failure(stage, f"unexpected {type(exc).__name__}: {exc}")
        finally:
            if timer is not None:
                self.ms[timer] += (time.perf_counter() - started) * 1000.0


class Inspector:
    """Inspects one board image with the station's registrar and each connector's model."""

    def __init__(
        self,
        config: StationConfig,
        registry: ModelRegistry,
        registrar: Registrar,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        """Raises ConfigError for a connector box outside the reference image."""
        self.config = config
        self.registry = registry
        self.registrar = registrar
        self.connectors = {cid: config.connectors[cid] for cid in config.enabled_connectors()}
        check_boxes(
            config.connectors, registrar.reference_size, str(config.station.reference_image)
        )
        self._photos = itertools.count()  # decoded photos: which read the focus, which the light
        # A board's connectors are scored concurrently (onnxruntime releases the GIL).
        self._pool = pool or ThreadPoolExecutor(
            max_workers=config.scoring.connector_threads, thread_name_prefix="score"
        )

    def models(self) -> dict[str, ConnectorModel | None]:
        """This board's model of each enabled connector."""
        return self.registry.snapshot(list(self.connectors))

    def with_config(self, config: StationConfig) -> Inspector:
        """An inspector for a new connector layout, sharing registry, registrar and threads
        (boards still in the old one keep using them). Raises ConfigError as the constructor."""
        return Inspector(config, self.registry, self.registrar, self._pool)

    def refuse(self, message: str, **source: str | None) -> InspectionResult:
        """The ERROR verdict of an input that could not even be read (too big, vanished);
        `source` holds `inspect`'s keyword arguments."""
        failure = Failure("input", message, ERROR)
        verdict = build_verdict(
            result_id=new_result_id(),
            station=self.config.station.name,
            processing_ms={},
            connectors=[],
            failure=failure,
            **source,
        )
        return InspectionResult(verdict, {}, {}, {}, failure.stage, failure.message)

    def inspect(
        self,
        data: bytes,
        *,
        camera: str,
        source_uri: str,
        source_sha256: str,
        part_id: str | None,
        captured_at: str | None,
        models: dict[str, ConnectorModel | None] | None = None,
    ) -> InspectionResult:
        """Never raises for a bad image or model: every problem ends in an ERROR/NOT_DECIDABLE.
        `models`: this board's snapshot (`models()`), taken with the inspector it goes with."""
        started = time.perf_counter()
        result_id = new_result_id()
        # One snapshot per board: a model swapped in meanwhile is used from the next board on.
        if models is None:
            models = self.models()
        stages = _Stages()
        crops: dict[str, np.ndarray] = {}
        scores: dict[str, ConnectorScore] = {}
        heatmaps: dict[str, bytes] = {}
        outcomes: list[ConnectorOutcome] = []
        outside: dict[str, float] = {}
        capture: dict[str, float] | None = None

        with stages.run("decode", "decode", (DecodeError, ERROR)):
            image = decode_image(data, self._max_bytes(source_uri), self.config.limits.max_pixels)
        watched = self.config.drift.enabled  # only the drift monitor reads the capture
        focus = light = False
        if stages.failure is None:
            if watched:
                drift = self.config.drift
                photo = next(self._photos)
                focus, light = reads(photo, drift.focus_every_boards, drift.light_every_boards)
            with stages.run("align", "align", (RegistrationError, NOT_DECIDABLE)):
                registration = self.registrar.register(image, light)
        capture_seconds = capture_cpu_seconds = 0.0
        if stages.failure is None and watched:
            capture_started, cpu_started = time.perf_counter(), time.thread_time()
            capture = _capture(registration, self.registrar.reference_size, focus)
            capture_seconds = time.perf_counter() - capture_started
            # The gray level the registration took for the capture measures counts as theirs.
            capture_cpu_seconds = time.thread_time() - cpu_started
            capture_cpu_seconds += registration.gray_level_cpu_seconds
        if stages.failure is None:
            with stages.run("crop", "align"):
                limit = self.config.registration.max_outside_fraction
                outside = outside_the_photo(image.shape, registration, self.connectors, limit)
                inside = {c: s for c, s in self.connectors.items() if c not in outside}
                crops = crop_all(image, registration, inside)
        if stages.failure is None:
            with stages.run("infer", "infer"):
                outcomes = list(
                    self._pool.map(
                        lambda cid: (
                            self._score(cid, models[cid], crops.get(cid), scores)
                            if cid not in outside
                            else _outside(cid, models[cid], outside[cid], limit)
                        ),
                        self.connectors,
                    )
                )
        if stages.failure is None:
            with stages.run("heatmap"):
                self._heatmaps(outcomes, crops, scores, heatmaps)
            prefix = f"{self.config.mqtt.prefix}/heatmap/{result_id}"
            outcomes = [
                replace(o, heatmap_topic=f"{prefix}/{o.id}") if o.id in heatmaps else o
                for o in outcomes
            ]

        failure = stages.failure or _connector_failure(outcomes)
        if failure is not None and not outcomes:
            outcomes = [_not_inspected(cid, models[cid], failure) for cid in self.connectors]
        stages.ms["total"] = (time.perf_counter() - started) * 1000.0
        verdict = build_verdict(
            result_id=result_id,
            station=self.config.station.name,
            camera=camera,
            part_id=part_id or _part_id_from_uri(source_uri),
            source_uri=source_uri,
            source_sha256=source_sha256,
            captured_at=captured_at,
            processing_ms=stages.ms,
            connectors=outcomes,
            failure=failure,
        )
        return InspectionResult(
            verdict=verdict,
            heatmaps=heatmaps,
            crops=crops,
            scores=scores,
            failed_stage=failure.stage if failure else None,
            error=failure.message if failure else None,
            capture=capture,
            capture_seconds=capture_seconds,
            capture_cpu_seconds=capture_cpu_seconds,
        )

    def _max_bytes(self, source_uri: str) -> int:
        limits = self.config.limits
        return limits.max_file_bytes if source_uri.startswith("file:") else limits.max_payload_bytes

    def _score(
        self,
        connector: str,
        model: ConnectorModel | None,
        crop: np.ndarray | None,
        scores: dict[str, ConnectorScore],
    ) -> ConnectorOutcome:
        """Score one connector; its own failure makes only its row an ERROR."""
        if model is None:
            return ConnectorOutcome(connector, ERROR, None, None, None, reason="no model loaded")
        info = {"version": model.version, "sha256": model.sha256}
        threshold = model.manifest.threshold
        if crop is None:
            reason = "no crop for this connector"
            return ConnectorOutcome(connector, ERROR, None, threshold, info, reason=reason)
        try:
            result = model.score(crop)
        except Exception as exc:
            log.exception("connector_failed", connector=connector, version=model.version)
            reason = f"{type(exc).__name__}: {exc}"
            return ConnectorOutcome(connector, ERROR, None, threshold, info, reason=reason)
        scores[connector] = result
        return ConnectorOutcome.scored(connector, result.score, threshold, info)

    def _heatmaps(
        self,
        outcomes: list[ConnectorOutcome],
        crops: dict[str, np.ndarray],
        scores: dict[str, ConnectorScore],
        heatmaps: dict[str, bytes],
    ) -> None:
        wanted = {NOK, OK} if self.config.mqtt.heatmaps_for_ok else {NOK}
        for outcome in outcomes:
            if outcome.evaluation in wanted:
                overlay = overlay_heatmap(crops[outcome.id], scores[outcome.id].amap)
                heatmaps[outcome.id] = encode_png(overlay, compression=1)


def _capture(
    registration: Registration, reference_size: tuple[int, int], focus: bool
) -> dict | None:
    """The photo's capture measures for the drift monitor; a fault there never fails a board."""
    try:
        return capture_measures(registration, reference_size, focus)
    except Exception:
        log.exception("capture_measures_failed")
        return None


def _connector_failure(outcomes: list[ConnectorOutcome]) -> Failure | None:
    """One board-level failure naming every connector that could not be scored: ERROR when
    one could not be scored, NOT_DECIDABLE when they were only out of the photo."""
    if not outcomes:
        return Failure("infer", "no enabled connector to inspect")
    failed = [o for o in outcomes if o.evaluation not in (OK, NOK)]
    if not failed:
        return None
    message = "; ".join(f"{o.id}: {o.reason}" for o in failed)
    if any(o.evaluation == ERROR for o in failed):
        return Failure("infer", message)
    return Failure("crop", message, NOT_DECIDABLE)


def _outside(
    connector: str, model: ConnectorModel | None, fraction: float, limit: float
) -> ConnectorOutcome:
    """The row of a connector whose box was not fully photographed: never scored."""
    info = {"version": model.version, "sha256": model.sha256} if model else None
    threshold = model.manifest.threshold if model else None
    reason = f"box {fraction:.0%} outside the photo (limit {limit:.0%})"
    return ConnectorOutcome(connector, NOT_DECIDABLE, None, threshold, info, reason=reason)


def _not_inspected(
    connector: str, model: ConnectorModel | None, failure: Failure
) -> ConnectorOutcome:
    """The row of a connector on a board that stopped before scoring."""
    info = {"version": model.version, "sha256": model.sha256} if model else None
    threshold = model.manifest.threshold if model else None
    reason = f"not inspected: {failure.stage} failed"
    return ConnectorOutcome(connector, failure.evaluation, None, threshold, info, reason=reason)


def _part_id_from_uri(source_uri: str) -> str | None:
    """A file's stem as part id (unsafe characters replaced), or None for other sources."""
    try:
        parsed = urlparse(source_uri)
    except ValueError:
        return None
    if parsed.scheme != "file":
        return None
    return safe_part_id(PurePosixPath(unquote(parsed.path)).stem)
