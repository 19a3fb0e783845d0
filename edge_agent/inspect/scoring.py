"""Per-connector ONNX anomaly models: verified loading, scoring, hot reload on `active` changes."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import structlog

from edge_agent.contracts.bundle import (
    ACTIVE_LINK,
    MISFIT,
    MODEL_FILE,
    BundleError,
    Manifest,
    active_dir,
    connector_dir,
    misfit,
    verify_bundle,
)

log = structlog.get_logger()

_ORT_DTYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32"}


@dataclass(frozen=True)
class ConnectorScore:
    """One crop's result on the calibrated scale, where 1.0 is the connector's threshold."""

    score: float
    amap: np.ndarray
    raw_score: float


@dataclass(frozen=True)
class ModelChange:
    """What `refresh` did for one connector: a swap (error None) or a refused new bundle."""

    connector: str
    path: Path
    old_version: str | None
    new_version: str | None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The line PC's cores are shared by every session and the rest of the agent: no busy-waiting.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _check_tensor(
    where: Path, what: str, node: ort.NodeArg, dtype: str, shape: Sequence[int]
) -> None:
    """Refuse a graph input/output whose dtype or fixed dims disagree with the manifest."""
    actual = _ORT_DTYPES.get(node.type, node.type)
    if actual != dtype:
        raise BundleError(f"{where}: {what} '{node.name}' is {actual}, manifest needs {dtype}")
    dims = list(node.shape)
    if len(dims) != len(shape) or any(
        isinstance(d, int) and d != e for d, e in zip(dims, shape, strict=True)
    ):
        raise BundleError(
            f"{where}: {what} '{node.name}' has shape {dims}, manifest needs {list(shape)}"
        )


class ConnectorModel:
    """A verified bundle with its onnxruntime session; `score` is safe to call from any thread."""

    def __init__(self, path: Path, manifest: Manifest, session: ort.InferenceSession) -> None:
        self.path = path
        self.manifest = manifest
        self.connector = manifest.connector
        self.version = manifest.version
        self._session = session
        self._input_name = session.get_inputs()[0].name
        self._input_shape = (manifest.input.height, manifest.input.width, manifest.input.channels)
        self._output_names = [manifest.outputs["map"], manifest.outputs["score"]]

    @property
    def sha256(self) -> str:
        return self.manifest.onnx_sha256

    @classmethod
    def load(cls, bundle_dir: Path, threads: int) -> ConnectorModel:
        """Verify a bundle (manifest and sha256) and `open` it."""
        bundle_dir = Path(bundle_dir)
        return cls.open(bundle_dir, verify_bundle(bundle_dir), threads)

    @classmethod
    def open(cls, bundle_dir: Path, manifest: Manifest, threads: int) -> ConnectorModel:
        """Open the bundle's model file as `manifest` describes it (its sha256 checked) in
        onnxruntime, check its graph and run one warm-up crop."""
        bundle_dir = Path(bundle_dir)
        model_path = bundle_dir / MODEL_FILE
        try:
            data = model_path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{model_path}: cannot read: {exc.strerror}") from None
        if hashlib.sha256(data).hexdigest() != manifest.onnx_sha256:
            raise BundleError(f"{model_path}: changed while being loaded")
        missing = {"map", "score"} - manifest.outputs.keys()
        if missing:
            raise BundleError(f"{bundle_dir}: manifest outputs lack {sorted(missing)}")
        try:
            session = ort.InferenceSession(
                data, sess_options=_session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise BundleError(f"{model_path}: onnxruntime cannot load the graph: {exc}") from None
        cls._check_graph(model_path, manifest, session)
        model = cls(bundle_dir, manifest, session)
        try:
            model.score(np.zeros(model._input_shape, np.uint8))
        except Exception as exc:
            raise BundleError(f"{model_path}: warm-up inference failed: {exc}") from None
        return model

    @staticmethod
    def _check_graph(where: Path, manifest: Manifest, session: ort.InferenceSession) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = [node.name for node in inputs]
            raise BundleError(f"{where}: graph has inputs {names}, the contract is exactly one")
        spec = manifest.input
        _check_tensor(where, "input", inputs[0], "uint8", (1, spec.height, spec.width, 3))
        outputs = {node.name: node for node in session.get_outputs()}
        size = manifest.model_input_size
        for key, shape in (("map", (1, size, size)), ("score", (1,))):
            name = manifest.outputs[key]
            if name not in outputs:
                raise BundleError(f"{where}: graph has no output '{name}' ({list(outputs)})")
            _check_tensor(where, "output", outputs[name], "float32", shape)

    def score(self, crop_bgr: np.ndarray) -> ConnectorScore:
        """Score one crop exactly as cut from the board; a crop of the wrong size is an error."""
        if crop_bgr.dtype != np.uint8 or crop_bgr.shape != self._input_shape:
            raise ValueError(
                f"{self.connector}: crop {crop_bgr.shape} {crop_bgr.dtype} does not match the "
                f"model input {self._input_shape} uint8 of version {self.version}"
            )
        batch = np.ascontiguousarray(crop_bgr)[np.newaxis]
        amap, raw = self._session.run(self._output_names, {self._input_name: batch})
        size = self.manifest.model_input_size
        if amap.shape != (1, size, size) or raw.shape != (1,):
            raise ValueError(
                f"{self.connector}: graph returned map {amap.shape} and score {raw.shape}, "
                f"expected (1, {size}, {size}) and (1,)"
            )
        raw_score = float(raw[0])
        divisor = np.float32(self.manifest.calibration.raw_threshold)
        return ConnectorScore(
            score=self.manifest.normalise(raw_score),
            amap=(amap[0] / divisor).astype(np.float32, copy=False),
            raw_score=raw_score,
        )


class ModelRegistry:
    """The loaded model of each connector; `refresh` follows the `active` links safely."""

    def __init__(
        self,
        models_root: Path,
        connectors: Sequence[str],
        threads: int,
        crop_sizes: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.models_root = Path(models_root)
        self.connectors = list(connectors)
        # connector -> (height, width) of the crop its box cuts; a model of another size is refused
        self.crop_sizes = dict(crop_sizes or {})
        self.threads = threads
        self._models: dict[str, ConnectorModel] = {}
        self._refused: dict[str, tuple[Path, tuple[int, ...], str]] = {}
        self._verified: dict[str, tuple[int, ...]] = {}  # signature of each loaded bundle
        self._notices: dict[str, str] = {}  # connector -> what changed on disk under it
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        # How a bundle is loaded (a bundle folder, onnxruntime threads); tests slow it down.
        self.load_bundle: Callable[[Path, int], ConnectorModel] = ConnectorModel.load

    def get(self, connector: str) -> ConnectorModel | None:
        with self._lock:
            return self._models.get(connector)

    def versions(self) -> dict[str, dict]:
        """connector -> {"version", "sha256"} of each loaded model."""
        with self._lock:
            models = dict(self._models)
        return {c: {"version": m.version, "sha256": m.sha256} for c, m in models.items()}

    def load_all(self) -> dict[str, str]:
        """Load every connector's active bundle; connector -> error text for those that failed."""
        self.refresh()
        errors = {}
        for connector in self.connectors:
            if self.get(connector) is not None:
                continue
            refused = self._refused.get(connector)
            link = connector_dir(self.models_root, connector) / ACTIVE_LINK
            errors[connector] = refused[2] if refused else f"{link}: no active model"
        return errors

    def refresh(self) -> list[ModelChange]:
        """Load any newly activated bundle first, then swap it in; a broken one leaves the old."""
        changes = []
        with self._refresh_lock:
            for connector in self.connectors:
                change = self._refresh_one(connector)
                if change is not None:
                    changes.append(change)
        return changes

    def relayout(
        self,
        connectors: Sequence[str],
        crop_sizes: Mapping[str, tuple[int, int]],
        models: Mapping[str, tuple[ConnectorModel, Path]],
    ) -> None:
        """Take up a new connector layout at once: its connectors, crop sizes and the models
        loaded (and checked) for them; boards snapshot the models with `snapshot`."""
        with self._refresh_lock, self._lock:
            self.connectors = list(connectors)
            self.crop_sizes = dict(crop_sizes)
            for connector, (model, target) in models.items():
                if self._models.get(connector) is not model:
                    log.info(
                        "model_loaded",
                        connector=connector,
                        version=model.version,
                        previous=getattr(self._models.get(connector), "version", None),
                        sha256=model.sha256,
                    )
                self._models[connector] = model
                self._verified[connector] = _signature(target)
                self._refused.pop(connector, None)
                self._notices.pop(connector, None)
            for connector in [c for c in self._models if c not in models]:
                del self._models[connector]

    def snapshot(self, connectors: Sequence[str]) -> dict[str, ConnectorModel | None]:
        """The model of each of `connectors`, read together (one board's models)."""
        with self._lock:
            return {c: self._models.get(c) for c in connectors}

    def notices(self) -> dict[str, str]:
        """connector -> what changed on disk under its running model (it keeps inspecting)."""
        with self._lock:
            return dict(self._notices)

    def _notice(self, connector: str, text: str | None) -> None:
        """Record (logged once) or clear what changed under a connector's running model."""
        with self._lock:
            before = self._notices.get(connector)
            if text is None:
                self._notices.pop(connector, None)
            else:
                self._notices[connector] = text
        if text is not None and text != before:
            log.warning("model_changed_on_disk", connector=connector, notice=text)
        elif text is None and before is not None:
            log.info("model_notice_cleared", connector=connector)

    def _watch_running(self, connector: str, current: ConnectorModel, target: Path | None) -> None:
        """Notice an `active` link removed, or the running bundle's files changed in place."""
        if target is None:
            link = connector_dir(self.models_root, connector) / ACTIVE_LINK
            self._notice(
                connector,
                f"{link} was removed; the verified model {current.version} in memory keeps "
                f"inspecting, but a restart would find no model: point the link at a bundle",
            )
        elif _signature(target) != self._verified.get(connector):
            self._notice(
                connector,
                f"{target} changed on disk after it was verified; the verified model in memory "
                f"keeps inspecting, but a restart would load the changed files: put the bundle "
                f"back or activate a fresh version",
            )
        else:
            self._notice(connector, None)

    def _refresh_one(self, connector: str) -> ModelChange | None:
        target = active_dir(self.models_root, connector)
        current = self.get(connector)
        if current is not None and (target is None or current.path == target):
            self._watch_running(connector, current, target)
            return None
        if target is None:
            return None
        signature = _signature(target)
        refused = self._refused.get(connector)
        if refused is not None and refused[:2] == (target, signature):
            return None
        old_version = current.version if current else None
        try:
            model = self.load_bundle(target, self.threads)
            if model.version != target.name:
                raise BundleError(
                    f"{target}: {MISFIT}: manifest is for version {model.version!r}, "
                    f"not {target.name!r}"
                )
            unfit = misfit(model.manifest, connector, self.crop_sizes.get(connector))
            if unfit is not None:
                raise BundleError(f"{target}: {unfit}")
        except Exception as exc:  # any broken bundle is refused; the running model stays
            error = str(exc) if isinstance(exc, BundleError) else f"{target}: {exc!r}"
            self._refused[connector] = (target, signature, error)
            log.error(
                "model_refused",
                connector=connector,
                path=str(target),
                kept_version=old_version,
                error=error,
            )
            if current is not None:
                self._notice(connector, f"{error}; the model {old_version} keeps inspecting")
            return ModelChange(connector, target, old_version, target.name, error)
        with self._lock:
            self._models[connector] = model
            self._verified[connector] = signature
        self._refused.pop(connector, None)
        self._notice(connector, None)
        log.info(
            "model_loaded",
            connector=connector,
            version=model.version,
            previous=old_version,
            sha256=model.sha256,
        )
        return ModelChange(connector, target, old_version, model.version)


def _signature(bundle_dir: Path) -> tuple[int, ...]:
    """Cheap identity of a bundle's files, so a refused bundle is retried only once it changes."""
    stamps = []
    try:
        for path in sorted(bundle_dir.iterdir()):
            stat = path.stat()
            stamps += [stat.st_mtime_ns, stat.st_size]
    except OSError:
        return ()
    return tuple(stamps)
