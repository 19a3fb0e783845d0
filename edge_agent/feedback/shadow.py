"""Shadow rollout: each board's crops are also scored by the connectors' candidate models.

A candidate never decides a verdict: its results go to `<prefix>/shadow/verdict` marked
`"simulated": true`. After `boards_needed` boards in a row on which it agrees with the active
model (both OK or both NOK), it is due for promotion; a disagreement starts the count again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.verdict import NOK, OK, ConnectorOutcome, board_evaluation
from edge_agent.feedback.lifecycle import CANDIDATE_LINK, link_target
from edge_agent.inspect.scoring import ConnectorModel

log = structlog.get_logger()

SCHEMA = "inspect.shadow/1"


@dataclass
class _Candidate:
    model: ConnectorModel
    agreeing: int = 0


class ShadowScorer:
    """The loaded candidate of each connector and how long it has agreed with the active one."""

    def __init__(
        self, models_root: Path, connectors: Sequence[str], threads: int, boards_needed: int
    ) -> None:
        self.models_root = Path(models_root)
        self.connectors = list(connectors)
        self.threads = threads
        self.boards_needed = boards_needed
        self._candidates: dict[str, _Candidate] = {}
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()

    def versions(self) -> dict[str, str]:
        """connector -> version of each loaded candidate."""
        with self._lock:
            return {c: entry.model.version for c, entry in self._candidates.items()}

    def refresh(self) -> list[str]:
        """Follow the `candidate` links: load new candidates, drop removed ones; what changed."""
        changed = []
        for connector in self.connectors:
            version = link_target(self.models_root, connector, CANDIDATE_LINK)
            with self._lock:
                loaded = self._candidates.get(connector)
            if (loaded.model.version if loaded else None) == version:
                continue
            if version is None:
                with self._lock:
                    self._candidates.pop(connector, None)
                changed.append(connector)
                continue
            if self._refused.get(connector) == version:
                continue
            try:
                model = ConnectorModel.load(self.models_root / connector / version, self.threads)
            except Exception as exc:  # a broken candidate is only not shadowed
                self._refused[connector] = version
                log.error(
                    "shadow_candidate_refused", connector=connector, version=version, error=str(exc)
                )
                continue
            with self._lock:
                self._candidates[connector] = _Candidate(model)
            log.info("shadow_candidate_loaded", connector=connector, version=version)
            changed.append(connector)
        return changed

    def forget(self, connector: str) -> None:
        """Stop shadowing a connector (its candidate was promoted or withdrawn)."""
        with self._lock:
            self._candidates.pop(connector, None)

    def score(
        self, verdict: Mapping[str, Any], crops: Mapping[str, np.ndarray]
    ) -> tuple[dict | None, list[tuple[str, str]]]:
        """The simulated verdict of one board, and the (connector, version) pairs now due."""
        with self._lock:
            candidates = dict(self._candidates)
        rows = {row["id"]: row for row in verdict.get("connectors", [])}
        shadowed, due = [], []
        for connector, entry in candidates.items():
            active = rows.get(connector)
            crop = crops.get(connector)
            if active is None or crop is None or active.get("evaluation") not in (OK, NOK):
                continue
            model = entry.model
            info = {"version": model.version, "sha256": model.sha256}
            try:
                outcome = ConnectorOutcome.scored(
                    connector, model.score(crop).score, model.manifest.threshold, info
                )
            except Exception as exc:
                log.warning("shadow_scoring_failed", connector=connector, error=str(exc))
                continue
            agrees = outcome.evaluation == active["evaluation"]
            with self._lock:
                entry.agreeing = entry.agreeing + 1 if agrees else 0
                agreeing = entry.agreeing
            if agreeing >= self.boards_needed:
                due.append((connector, model.version))
            shadowed.append(
                {
                    **outcome.as_dict(),
                    "active": {k: active.get(k) for k in ("evaluation", "score", "model")},
                    "agrees": agrees,
                    "agreeing_boards": agreeing,
                    "boards_needed": self.boards_needed,
                }
            )
        if not shadowed:
            return None, due
        by_id = {row["id"]: row["evaluation"] for row in shadowed}
        evaluations = [by_id.get(cid, row.get("evaluation")) for cid, row in rows.items()]
        payload = {
            "schema": SCHEMA,
            "simulated": True,
            "result_id": verdict.get("result_id"),
            "part_id": verdict.get("part_id"),
            "camera": verdict.get("camera"),
            "station": verdict.get("station"),
            "created_at": utc_now(),
            "evaluation": board_evaluation(evaluations),
            "active_evaluation": verdict.get("evaluation"),
            "connectors": shadowed,
        }
        return payload, due
