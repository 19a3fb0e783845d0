"""The model bundle contract shared by trainer and agent: layout, manifest, integrity, activation.

<models>/<connector>/<version>/model.onnx      uint8 crop in (1, H, W, 3, BGR); map + score out
<models>/<connector>/<version>/manifest.json   everything needed to use and audit the model
<models>/<connector>/active -> <version>       switched atomically (rename of a symlink)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent.contracts.atomic import move_atomic, replace_symlink
from edge_agent.contracts.names import ConnectorId

SCHEMA = "edge-inspect.bundle/1"
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
ACTIVE_LINK = "active"
REJECTED_DIR = "rejected"
# In a refusal's text: the bundle is sound but made for another connector or crop size.
MISFIT = "does not fit its connector"
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\.\d+$")
OK_QUANTILE_LEVELS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
"""The levels of `Calibration.ok_quantiles`: the reference the agent's drift test compares to."""


class BundleError(RuntimeError):
    """A bundle that must not be used; the message says which file and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    """What the graph takes: the raw crop exactly as cut from the board image."""

    height: int
    width: int
    channels: Literal[3] = 3
    dtype: Literal["uint8"] = "uint8"
    layout: Literal["NHWC"] = "NHWC"
    channel_order: Literal["BGR"] = "BGR"


class Calibration(_Strict):
    """How the threshold was chosen. Scores are divided by `raw_threshold`, so 1.0 is the limit."""

    mode: Literal["ko", "ok-only", "line"]
    raw_threshold: float = Field(gt=0)
    n_ok: int
    n_ko: int
    false_reject_rate: float | None = None
    ko_recall: float | None = None
    margin: float | None = None
    target_false_reject: float | None = None
    guarantee: str
    ok_quantiles: list[float] | None = Field(
        default=None, min_length=len(OK_QUANTILE_LEVELS), max_length=len(OK_QUANTILE_LEVELS)
    )
    """Raw held-out OK scores at `OK_QUANTILE_LEVELS`; None in bundles made before drift."""


class TrainingInfo(_Strict):
    data_sha256: str
    n_train: int
    n_holdout_ok: int
    n_holdout_ko: int
    seconds: float
    params: dict[str, Any] = Field(default_factory=dict)


class Manifest(_Strict):
    """Everything the agent needs to run a bundle, and an engineer needs to audit it."""

    schema_: Literal["edge-inspect.bundle/1"] = Field(default=SCHEMA, alias="schema")
    connector: ConnectorId
    version: str
    method: str
    backbone: str
    model_input_size: int
    color_mode: Literal["gray", "rgb"]
    input: InputSpec
    outputs: dict[str, str] = Field(
        default_factory=lambda: {"map": "anomaly_map", "score": "score"}
    )
    roi_mask_id: str
    threshold: float = 1.0
    calibration: Calibration
    training: TrainingInfo
    metrics: dict[str, Any] = Field(default_factory=dict)
    onnx_sha256: str
    parity_tolerance: float
    created_at: str
    software: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def normalise(self, raw_score: float) -> float:
        """A raw graph score on the calibrated scale where `threshold` (1.0) is the limit."""
        return raw_score / self.calibration.raw_threshold

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(bundle_dir: Path) -> Manifest:
    path = bundle_dir / MANIFEST_FILE
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{path}: manifest missing") from None
    except ValidationError as exc:
        raise BundleError(f"{path}: invalid manifest: {exc.errors()[0]}") from None


def verify_bundle(bundle_dir: Path) -> Manifest:
    """Load and check a bundle: manifest valid, model present and matching its sha256."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    model = bundle_dir / MODEL_FILE
    if not model.is_file():
        raise BundleError(f"{model}: model file missing")
    actual = sha256_file(model)
    if actual != manifest.onnx_sha256:
        raise BundleError(
            f"{model}: sha256 {actual[:12]}... does not match the manifest's "
            f"{manifest.onnx_sha256[:12]}..."
        )
    return manifest


def connector_dir(models_root: Path, connector: str) -> Path:
    return Path(models_root) / connector


def active_dir(models_root: Path, connector: str) -> Path | None:
    """The resolved active bundle folder of a connector, or None when none is active."""
    link = connector_dir(models_root, connector) / ACTIVE_LINK
    if not link.is_symlink() and not link.is_dir():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def list_versions(models_root: Path, connector: str) -> list[str]:
    """Installed versions of a connector, oldest first."""
    root = connector_dir(models_root, connector)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
    return sorted(names, key=version_key)


def version_key(version: str) -> tuple[str, int]:
    """Sort key of `YYYY-MM-DD.N` versions."""
    day, _, counter = version.partition(".")
    return day, int(counter)


def next_version(models_root: Path, connector: str, today: dt.date | None = None) -> str:
    """`YYYY-MM-DD.N`, N counting the versions made that day (refused ones included)."""
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    rejected = connector_dir(models_root, connector) / REJECTED_DIR
    names = list_versions(models_root, connector)
    if rejected.is_dir():
        names += [p.name for p in rejected.iterdir() if _VERSION_RE.match(p.name)]
    taken = [v for v in names if v.startswith(day + ".")]
    counters = [version_key(v)[1] for v in taken]
    return f"{day}.{max(counters, default=0) + 1}"


def activate(models_root: Path, connector: str, version: str) -> None:
    """Point `active` at `version` atomically: a new symlink renamed over the old one."""
    root = connector_dir(models_root, connector)
    verify_bundle(root / version)
    replace_symlink(root / ACTIVE_LINK, version)


def publish_bundle(staging: Path, models_root: Path, connector: str, version: str) -> Path:
    """Move a fully written staging folder into place (atomic rename); never half a bundle."""
    verify_bundle(staging)
    final = connector_dir(models_root, connector) / version
    if final.exists():
        raise BundleError(f"{final}: version already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    move_atomic(staging, final)
    return final
