"""Recalibration from the line: the active model again, with a threshold set by its own scores.

For one connector and its active version, the journal's scores (the newest
`retrain.recalibrate_boards` boards scored by that version) and the operators' confirmations
give a threshold at the target false reject (`calibration.line_threshold`). Too few scores, a
change below `retrain.recalibrate_min_change`, or a drift alarm on the connector: nothing
changes. Otherwise the active bundle is copied under a new version whose manifest differs only
in its calibration (model file and sha256 unchanged), checked by the same gate as a retrained
candidate, then installed, made the candidate or refused by `edge_agent.feedback.lifecycle`, so
it is audited and rolled back like any version. Every outcome, the proposal's numbers included,
is written to `<state>/retrain/<connector>/recalibration.json` for the console.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from edge_agent.console.journal_reader import BORDERLINE, JournalReader
from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.bundle import (
    MANIFEST_FILE,
    Calibration,
    active_dir,
    next_version,
    publish_bundle,
    verify_bundle,
)
from edge_agent.contracts.clock import utc_now
from edge_agent.feedback import lifecycle
from edge_agent.store.crop_store import JOURNAL_FILE, CropStore
from trainer.calibration import LineScores, line_threshold
from trainer.datasets import load_crops
from trainer.retrain.dataset import assembler_for
from trainer.retrain.gate import check_model, decide
from trainer.retrain.runs import retrain_root
from trainer.settings import TrainerConfig

log = structlog.get_logger()

PROPOSAL_FILE = "recalibration.json"
STAGING = ".recalibrate"


@dataclass
class Recalibration:
    """What one connector's recalibration ended in, with the numbers behind it."""

    connector: str
    outcome: str  # proposed (dry run) | installed | candidate | refused | unchanged
    reason: str
    active: str | None = None
    version: str | None = None
    current_threshold: float | None = None
    proposed_threshold: float | None = None
    expected_false_reject: float | None = None
    false_reject_bound: float | None = None
    expected_recall: float | None = None
    n_scores: int = 0
    n_confirmed: int = 0
    gate: dict[str, Any] | None = None
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recalibrate(
    config: TrainerConfig,
    connector: str,
    store: CropStore,
    *,
    dry_run: bool = False,
    drift_alarm: Callable[[str], str | None] = lambda _connector: None,
    by: str = "trainer",
) -> Recalibration:
    """Propose (and unless `dry_run`, gate and roll out) a line threshold for `connector`."""
    result = _recalibrate(config, connector, store, dry_run, drift_alarm, by)
    result.at = utc_now()
    folder = retrain_root(config) / connector
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / PROPOSAL_FILE, result.as_dict())
    log.info(
        "recalibration",
        connector=connector,
        outcome=result.outcome,
        version=result.version,
        proposed=result.proposed_threshold,
        reason=result.reason,
    )
    return result


def _recalibrate(
    config: TrainerConfig,
    connector: str,
    store: CropStore,
    dry_run: bool,
    drift_alarm: Callable[[str], str | None],
    by: str,
) -> Recalibration:
    settings = config.retrain
    models = config.paths.models
    active = active_dir(models, connector)
    if active is None:
        return Recalibration(connector, "unchanged", "no active model to recalibrate")
    manifest = verify_bundle(active)
    current = manifest.calibration.raw_threshold
    result = Recalibration(
        connector, "unchanged", "", active=manifest.version, current_threshold=current
    )
    alarm = drift_alarm(connector)
    if alarm:
        result.reason = f"drift alarm on ({alarm}): the line's scores are not learned from now"
        return result
    rows = JournalReader(config.paths.state / JOURNAL_FILE).line_scores(
        connector, manifest.version, settings.recalibrate_boards
    )
    scores = np.array([score for score, _ in rows], np.float64)
    labels = np.array([label for _, label in rows], dtype="<U2")
    result.n_scores, result.n_confirmed = len(rows), int(np.count_nonzero(labels != ""))
    target = config.training.target_false_reject
    found = line_threshold(
        LineScores(scores, labels),
        target,
        settings.recalibrate_confidence,
        settings.recalibrate_min_ok,
        BORDERLINE,
    )
    if found is None:
        result.reason = (
            f"too few scores: {int(np.count_nonzero(labels != 'KO'))} OK scores under "
            f"{manifest.version}, {settings.recalibrate_min_ok} needed"
        )
        return result
    proposed = found.threshold * current
    result.proposed_threshold = proposed
    result.expected_false_reject = found.false_reject
    result.false_reject_bound = found.false_reject_bound
    result.expected_recall = found.ko_recall
    change = proposed / current - 1.0
    if abs(change) < settings.recalibrate_min_change:
        result.reason = (
            f"the line's threshold is within {settings.recalibrate_min_change:.0%} of the "
            f"current one ({change:+.1%})"
        )
        return result
    if dry_run:
        result.outcome, result.reason = "proposed", f"{change:+.1%}: {found.guarantee}"
        return result
    calibration = Calibration(
        mode="line",
        raw_threshold=proposed,
        n_ok=found.n_ok,
        n_ko=found.n_ko,
        false_reject_rate=found.false_reject,
        ko_recall=found.ko_recall,
        target_false_reject=target,
        guarantee=found.guarantee,
        ok_quantiles=manifest.calibration.ok_quantiles,  # raw scale: the threshold moves
    )
    return _roll_out(config, connector, store, active, calibration, result, by)


def _roll_out(
    config: TrainerConfig,
    connector: str,
    store: CropStore,
    active: Path,
    calibration: Calibration,
    result: Recalibration,
    by: str,
) -> Recalibration:
    """Stage the threshold-only version, gate it against the active one, and roll it out."""
    models = config.paths.models
    version = next_version(models, connector)
    staging = models / STAGING / connector / version
    shutil.rmtree(staging.parent, ignore_errors=True)
    shutil.copytree(active, staging, symlinks=True)
    manifest = verify_bundle(active)
    manifest.version, manifest.calibration, manifest.created_at = version, calibration, utc_now()
    manifest.metrics = {"recalibrated_from": result.active}
    write_json_atomic(staging / MANIFEST_FILE, manifest.dump())
    try:
        assembly = assembler_for(config, connector).assemble(
            config.retrain.seed_data / connector if config.retrain.seed_data else None,
            store,
            active,
        )
        size = (manifest.input.height, manifest.input.width)
        gate_ok = load_crops([c.source for c in assembly.gate_ok], size)
        ko = load_crops([c.source for c in assembly.ko], size)
        decision = decide(
            check_model(staging, gate_ok, ko),
            check_model(active, gate_ok, ko),
            config.retrain.false_reject_tolerance,
        )
        result.version, result.gate = version, decision.as_dict()
        extra = {"gate": decision.summary, "recalibrated_from": result.active}
        if not decision.accepted:
            lifecycle.refuse(models, connector, staging, version, by, result.gate)
            result.outcome, result.reason = "refused", decision.summary
            return result
        publish_bundle(staging, models, connector, version)
    finally:
        shutil.rmtree(models / STAGING, ignore_errors=True)
    if config.retrain.rollout == "auto":
        lifecycle.install(models, connector, version, by, **extra)
        result.outcome = "installed"
    else:
        lifecycle.set_candidate(models, connector, version, by, **extra)
        result.outcome = "candidate"
    result.reason = f"{calibration.guarantee}; gate: {decision.summary}"
    return result
