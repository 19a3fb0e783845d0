"""The agent's side of retraining: keep crops, take confirmations, shadow candidates, commands.

The daemon calls in at a few points only: `board_done` after a board's verdict is committed
(the crops are written and shadow-scored by one background thread, off the inspection path),
`follow_links` and `command` (`cmd/promote`, `cmd/rollback`) from its model-loader thread
(candidate loads, lifecycle changes to announce), and the `confirm` topic handler. Crop
retention runs in the agent's retention thread (`store/retention.py`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import structlog

from edge_agent.comms.confirmations import apply_confirmation, parse_confirmation
from edge_agent.comms.mqtt_link import Handler, MessageProperties, MqttLink
from edge_agent.comms.payloads import json_object
from edge_agent.contracts.bundle import BundleError
from edge_agent.contracts.config import MB, StationConfig
from edge_agent.feedback import lifecycle
from edge_agent.feedback.shadow import ShadowScorer
from edge_agent.store.crop_store import CropStore
from edge_agent.store.journal import Journal

log = structlog.get_logger()

QUEUE_BOARDS = 64
COMMANDS = ("promote", "rollback")
_STOP = object()


class FeedbackLoop:
    """Owns the crop store, the shadow scorer and the background thread that feeds them."""

    def __init__(self, config: StationConfig, journal: Journal, connectors: list[str]) -> None:
        self.config = config
        self.journal = journal
        self.models_root = config.paths.models
        self.connectors = list(connectors)
        floor = int(config.storage.crops_min_free_mb * MB)
        self.store = CropStore(config.paths.state, floor) if config.retention.keep_crops else None
        self.shadow = ShadowScorer(
            self.models_root, connectors, config.scoring.threads, config.retrain.shadow_boards
        )
        self.link: MqttLink | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BOARDS)
        self._thread: threading.Thread | None = None
        self._signatures: dict[str, tuple] = {}

    def handlers(self) -> dict[str, Handler]:
        """Inbound MQTT topics (suffixes) this part answers."""
        return {"confirm": self._on_confirm}

    def start(self, link: MqttLink | None) -> None:
        """Load candidates and start the background thread."""
        self.link = link
        self.shadow.refresh()
        self._signatures = {c: lifecycle.signature(self.models_root, c) for c in self.connectors}
        self._thread = threading.Thread(target=self._run, name="feedback", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread and close the store."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        if self.store is not None:
            self.store.close()

    def board_done(self, verdict: dict, crops: Mapping[str, np.ndarray]) -> None:
        """Hand a committed board's crops over (blocks only when far behind: nothing is lost)."""
        if crops and (self.store is not None or self.shadow.versions()):
            self._queue.put((verdict, dict(crops)))

    def follow_links(self) -> bool:
        """Load or drop candidates; True when a connector's lifecycle changed (loader thread)."""
        self.shadow.refresh()
        changed = False
        for connector in self.connectors:
            current = lifecycle.signature(self.models_root, connector)
            if current != self._signatures.get(connector):
                self._signatures[connector] = current
                changed = True
        return changed

    def _crop_size(self, connector: str) -> tuple[int, int]:
        """(height, width) of the crop the connector's box cuts: the input its model takes."""
        return self.config.connectors[connector].crop_size

    def model_info(self, connector: str) -> dict[str, Any]:
        """Candidate, rollback target and last lifecycle event, for `model/<connector>`."""
        try:
            return lifecycle.lifecycle_info(self.models_root, connector, self._crop_size(connector))
        except lifecycle.LifecycleError as exc:
            return {"lifecycle_error": str(exc)}

    def command(self, name: str, payload: bytes) -> dict[str, Any]:
        """`promote` (`{"connector", "version"?, "by"?}`) or `rollback` (`{"connector", "by"?}`)."""
        try:
            request = json_object(payload or b"{}", "the command payload")
            connector = request.get("connector")
            if connector not in self.connectors:
                raise ValueError(f"connector {connector!r} is not one of {self.connectors}")
            version = request.get("version")
            if version is not None and not isinstance(version, str):
                raise ValueError(f"version {version!r} must be a string (none: the candidate)")
            by = str(request.get("by") or "mqtt")
            crop_size = self._crop_size(connector)
            if name == "promote":
                event = lifecycle.promote(
                    self.models_root, connector, version, by, crop_size=crop_size
                )
            else:
                event = lifecycle.rollback(self.models_root, connector, by, crop_size)
        except (ValueError, lifecycle.LifecycleError, BundleError, OSError) as exc:
            log.warning("model_command_refused", command=name, error=str(exc))
            return {"command": name, "ok": False, "error": str(exc)}
        log.info("model_command", command=name, connector=connector, version=event["version"])
        return {"command": name, "ok": True, "connector": connector, **event}

    def _on_confirm(self, topic: str, payload: bytes, properties: MessageProperties) -> None:
        try:
            confirmation = parse_confirmation(payload)
            connectors = apply_confirmation(self.journal, confirmation)
        except ValueError as exc:
            log.warning("confirmation_refused", error=str(exc))
            self._reply(properties, {"ok": False, "error": str(exc)})
            return
        log.info(
            "confirmed",
            result_id=confirmation.result_id,
            connectors=connectors,
            label=confirmation.label,
            by=confirmation.by,
        )
        self._reply(
            properties,
            {
                "ok": True,
                "result_id": confirmation.result_id,
                "connectors": connectors,
                "label": confirmation.label,
            },
        )

    def _reply(self, properties: MessageProperties, payload: dict[str, Any]) -> None:
        if self.link is not None and properties.response_topic:
            self.link.reply(properties, payload)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            verdict, crops = item
            try:
                self._handle(verdict, crops)
            except Exception:
                log.exception("feedback_failed", result_id=verdict.get("result_id"))

    def _handle(self, verdict: dict, crops: dict[str, np.ndarray]) -> None:
        if self.store is not None:
            self.store.keep(verdict, crops)
        payload, due = self.shadow.score(verdict, crops)
        if payload is not None and self.link is not None:
            self.link.publish_volatile("shadow/verdict", payload, qos=1)
        for connector, version in due:
            try:
                lifecycle.promote(
                    self.models_root, connector, by="shadow", expect_candidate=version
                )
            except (lifecycle.LifecycleError, BundleError, OSError) as exc:
                log.warning("shadow_promotion_refused", connector=connector, error=str(exc))
            else:
                log.info("shadow_promoted", connector=connector, version=version)
            self.shadow.forget(connector)
