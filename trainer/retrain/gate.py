"""The gate: a candidate replaces the active model only if it is not worse on the same data.

Both models are scored by onnxruntime exactly as the agent scores (`ConnectorModel`), on the
gate part of the held-out OK crops (never trained on, never used to calibrate either model
made by retraining) and on the connector's KO library. The candidate passes when its
false-reject rate is at most the active model's plus the tolerance and it catches every KO.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.inspect.scoring import ConnectorModel
from trainer.datasets import CropSet

THREADS = 2


@dataclass
class ModelCheck:
    """One model on the gate data; `error` when it could not score it at all."""

    version: str
    n_ok: int = 0
    false_rejects: list[str] = field(default_factory=list)
    n_ko: int = 0
    missed_ko: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def false_reject_rate(self) -> float | None:
        return len(self.false_rejects) / self.n_ok if self.n_ok and self.error is None else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "false_reject_rate": self.false_reject_rate}


@dataclass
class GateDecision:
    """Accepted or not, and every reason in words."""

    accepted: bool
    reasons: list[str]
    candidate: ModelCheck
    active: ModelCheck | None
    tolerance: float

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "summary": self.summary,
            "reasons": self.reasons,
            "tolerance": self.tolerance,
            "candidate": self.candidate.as_dict(),
            "active": self.active.as_dict() if self.active is not None else None,
        }


def check_model(bundle_dir: Path, gate_ok: CropSet, ko: CropSet) -> ModelCheck:
    """Score the gate OK crops and the KO library with one bundle."""
    check = ModelCheck(version=Path(bundle_dir).name, n_ok=len(gate_ok), n_ko=len(ko))
    try:
        model = ConnectorModel.load(Path(bundle_dir), THREADS)
        threshold = model.manifest.threshold
        for path, crop in zip(gate_ok.paths, gate_ok.images, strict=True):
            if model.score(crop).score >= threshold:
                check.false_rejects.append(path.name)
        for path, crop in zip(ko.paths, ko.images, strict=True):
            if model.score(crop).score < threshold:
                check.missed_ko.append(path.name)
    except Exception as exc:  # a model that cannot score the data is reported, not raised
        check.error = f"{type(exc).__name__}: {exc}"
    return check


def decide(candidate: ModelCheck, active: ModelCheck | None, tolerance: float) -> GateDecision:
    """Apply the gate rule; reasons say what passed or failed, with the numbers."""
    reasons, accepted = [], True
    if candidate.error is not None:
        reason = f"candidate cannot score the gate data: {candidate.error}"
        return GateDecision(False, [reason], candidate, active, tolerance)
    if candidate.n_ok == 0:
        accepted = False
        reasons.append("no held-out OK crops to measure the false-reject rate on")
    if candidate.missed_ko:
        accepted = False
        reasons.append(
            f"misses {len(candidate.missed_ko)} of {candidate.n_ko} KO in the library "
            f"({', '.join(candidate.missed_ko[:5])})"
        )
    elif candidate.n_ko:
        reasons.append(f"catches all {candidate.n_ko} KO in the library")
    else:
        reasons.append("KO library is empty: KO recall not checked")
    frr = candidate.false_reject_rate
    if frr is not None:
        if active is None:
            reasons.append(
                f"false-reject {frr:.4f} on {candidate.n_ok} held-out OK; no active model"
            )
        elif active.false_reject_rate is None:
            reasons.append(
                f"false-reject {frr:.4f} on {candidate.n_ok} held-out OK; the active model "
                f"{active.version} could not be scored ({active.error})"
            )
        else:
            limit = active.false_reject_rate + tolerance
            worse = frr > limit + 1e-12
            accepted &= not worse
            reasons.append(
                f"false-reject {frr:.4f} on {candidate.n_ok} held-out OK "
                f"{'is worse than' if worse else 'within'} the active {active.version}'s "
                f"{active.false_reject_rate:.4f} + tolerance {tolerance}"
            )
    return GateDecision(accepted, reasons, candidate, active, tolerance)
