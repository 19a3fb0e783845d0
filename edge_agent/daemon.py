"""The agent process: wires inputs -> worker threads -> journal/outbox -> MQTT, health, reloads.

Each stage lives in its package (`inputs/`, `inspect/`, `store/`, `comms/`, `feedback/`,
`ops/`); one board's way through them is `boards.py`. This module owns their order of start and
stop, the worker threads, readiness and the retained status.
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import socket
import threading
import time
from pathlib import Path

import structlog

from edge_agent import __version__
from edge_agent.boards import STORAGE_ERRORS, BoardHandler, BoardWork, as_internal_error
from edge_agent.comms.dispatch import dispatch
from edge_agent.comms.drift_publisher import DriftPublisher
from edge_agent.comms.link_health import link_reasons
from edge_agent.comms.mqtt_link import MessageProperties, MqttLink
from edge_agent.contracts.bundle import BundleError
from edge_agent.contracts.config import ConfigError, StationConfig
from edge_agent.feedback.feedback_loop import FeedbackLoop
from edge_agent.feedback.lifecycle import LifecycleError
from edge_agent.feedback.model_loader import ModelLoader
from edge_agent.feedback.relayout import RelayoutRefused, parse_install, prepare
from edge_agent.inputs.drop_folder import DropFolderWatcher
from edge_agent.inputs.names import name_text
from edge_agent.inputs.spool import MQTT_CAMERA, ImageSpool
from edge_agent.inspect.imaging import read_image_file
from edge_agent.inspect.pipeline import Inspector
from edge_agent.inspect.registration import Registrar
from edge_agent.inspect.scoring import ModelRegistry
from edge_agent.ops import sdnotify
from edge_agent.ops.health import HealthServer
from edge_agent.ops.opcua_status import opcua_report
from edge_agent.ops.readiness import Check, ReadinessWatch, Reason, assess
from edge_agent.ops.station_reasons import (
    connector_reasons,
    outbox_reasons,
    pipeline_reasons,
    storage_reasons,
)
from edge_agent.ops.storage import StorageHealth
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.integrity_monitor import IntegrityMonitor
from edge_agent.store.journal import Journal
from edge_agent.store.journal_retry import JournalRetry
from edge_agent.store.lost_writes import reinspect_lost_inputs
from edge_agent.store.retention import Retention

log = structlog.get_logger()

_STOP = object()
TRANSPORT_FACTOR = 4


class Agent:
    """Owns every long-lived part of the line service and their order of start and stop."""

    def __init__(self, config: StationConfig, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path  # re-read by `cmd/reload` for a new connector layout
        self.layout_notice: str | None = None  # a layout that needs a restart to take up
        self.node = socket.gethostname()
        self.config_sha256 = hashlib.sha256(config.model_dump_json().encode()).hexdigest()
        self.telemetry = Telemetry()
        self.watchdog = sdnotify.Watchdog()
        self.journal = Journal(config.paths.state / "journal.sqlite")
        self.mqtt_images = config.mqtt.enabled and config.inputs.mqtt_images
        reinspect_lost_inputs(self.journal, self._input_folders())
        self.storage = StorageHealth(config.paths.state, config.storage, self.telemetry)
        self.integrity = IntegrityMonitor(
            self.journal.path,
            config.storage.integrity_check_interval_s,
            self.storage.journal_checked,
        )
        self._arrivals = itertools.count()
        self.readiness_watch = ReadinessWatch(self.telemetry)
        # More readiness reasons join as checks (each returns the reasons that hold now).
        self.readiness_checks: list[Check] = [self._link_reasons]
        self.session = self.journal.start_session()
        connectors = config.enabled_connectors()
        self.registry = ModelRegistry(
            config.paths.models,
            connectors,
            config.scoring.threads,
            crop_sizes={cid: c.crop_size for cid, c in config.connectors.items()},
        )
        self.feedback = FeedbackLoop(config, self.journal, connectors)
        self.loader = ModelLoader(self._follow_model_links)
        self.registrar = Registrar(
            read_image_file(config.station.reference_image), config.registration
        )
        self.inspector = Inspector(config, self.registry, self.registrar)
        self.drift = DriftPublisher(
            config, self.journal, self.registry, self.telemetry, self._publish_status
        )
        self.boards = BoardHandler(
            config,
            self.journal,
            self.inspector,
            self.drift,
            self.feedback,
            self.storage,
            self.integrity,
            self.telemetry,
            self.watchdog,
            wake_outbox=lambda: self.link.wake() if self.link is not None else None,
        )
        self.retry: JournalRetry[BoardWork] = JournalRetry(
            self.boards.journal,
            max_delay_s=config.storage.retry_max_s,
            backlog=self.telemetry.set_journal_backlog,
            give_up_after_s=config.storage.give_up_after_s,
            give_up=self.boards.give_up,
            describe=lambda work: name_text(work.drop.path),
        )
        self.spool = ImageSpool(
            config.paths.state / "inbox",
            config.image_cameras(),
            self.telemetry.mqtt_refused,
            self.journal.read_from_path_prefix,
            journal_floor=(config.paths.state, self.storage.min_free_bytes),
        )
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, 2 * config.scoring.workers))
        self.model_errors: dict[str, str] = {}
        self._model_notices: dict[str, str] = {}  # as last published in the retained status
        self._stopping = threading.Event()
        self._ready = False
        self._workers: list[threading.Thread] = []
        self._watchers: list[DropFolderWatcher] = []
        self.link: MqttLink | None = None
        self.health: HealthServer | None = None
        self.retention: Retention | None = None

    # -- start and stop -------------------------------------------------------------------
    def start(self) -> None:
        """Load models, open inputs and outputs, then tell systemd we are ready."""
        self.model_errors = self.registry.load_all()
        for connector, error in self.model_errors.items():
            log.error("model not loaded", connector=connector, error=error)
        self._announce_models()
        drift = self.drift.start()
        folders = dict(self.config.inputs.drop_folders)
        if self.mqtt_images:
            folders |= self.spool.folders()  # made before the first image can arrive
        if self.config.mqtt.enabled:
            images = {"image/+": self._on_image} if self.mqtt_images else {}
            self.link = MqttLink(
                self.config.mqtt,
                self.journal,
                node=self.node,
                session=self.session,
                birth=self._birth,
                handlers={**images, "cmd/+": self._on_command, **self.feedback.handlers()},
                # Up to 4x the limit is spooled, so that an oversized image gets an ERROR
                # verdict and quarantine; beyond, the link logs and counts its refusal.
                max_payload_bytes=TRANSPORT_FACTOR * self.config.limits.max_payload_bytes,
                refused=self.telemetry.mqtt_refused,
            )
            self._announce_models()
            self.link.start()
        self.feedback.start(self.link)
        self.retry.start()
        for index in range(self.config.scoring.workers):
            worker = threading.Thread(target=self._work, name=f"inspect-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        # Every watcher starts here, once: their number never grows with the input.
        for camera, folder in folders.items():
            self._watch(camera, folder, spooled=camera.startswith(MQTT_CAMERA))
        self.retention = Retention(
            self.config.retention,
            self.journal.path,
            folders,
            self.feedback.store,
            self.telemetry,
            journal_malformed=self.integrity.check_soon,
        )
        self.retention.start()
        self.integrity.start()
        if self.config.health.enabled:
            self.health = HealthServer(
                self.config.health,
                heartbeat=lambda: not self._stopping.is_set(),
                readiness=self.readiness,
                telemetry=self.telemetry,
            )
            self.health.start()
        self.readiness()  # gauges and log current before the first probe can ask
        sdnotify.ready(f"session {self.session}, {len(self.registry.versions())} models")
        self._ready = True
        log.info("agent ready", session=self.session, models=self.registry.versions(), drift=drift)

    def _input_folders(self) -> dict[str, Path]:
        """Every folder inputs are filed below: the drop folders and the image inboxes."""
        folders = dict(self.config.inputs.drop_folders)
        if self.mqtt_images:
            inbox = self.config.paths.state / "inbox"
            folders |= {f"{MQTT_CAMERA}{c}": inbox / c for c in self.config.image_cameras()}
        return folders

    def _watch(self, camera: str, folder: Path, spooled: bool) -> DropFolderWatcher:
        limits = self.config.limits
        watcher = DropFolderWatcher(
            camera.removeprefix(MQTT_CAMERA),
            folder,
            lambda drop: self._submit(BoardWork(drop, spooled, next(self._arrivals))),
            poll=self.config.inputs.poll and not spooled,
            poll_interval_s=self.config.inputs.poll_interval_s,
            settle_s=0.0 if spooled else self.config.inputs.settle_s,
            max_bytes=limits.max_payload_bytes if spooled else limits.max_file_bytes,
            give_up_after_s=self.config.storage.give_up_after_s,
        )
        watcher.start()
        self._watchers.append(watcher)
        return watcher

    def stop(self) -> None:
        """Finish the boards in hand, publish `stopped`, close the journal."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        sdnotify.stopping()
        if self.retention is not None:
            self.retention.stop()
        self.integrity.stop()
        for watcher in self._watchers:
            watcher.stop()
        self.loader.stop()
        self.retry.stop()
        for _ in self._workers:
            self.queue.put(_STOP)
        for worker in self._workers:
            worker.join()
        self.feedback.stop()
        self.drift.stop()
        if self.link is not None:
            self.link.stop(clean=True)
        if self.health is not None:
            self.health.stop()
        self.journal.close()
        if self._ready:  # after a failed start, its error is the one line
            log.info("agent stopped", session=self.session)

    def run_until(self, stop: threading.Event) -> None:
        """The main loop: model work scheduled, stats, storage health, watchdog, until `stop`.

        Nothing here waits on a model load: loads run on the model-loader thread.
        """
        next_stats = time.monotonic() + self.config.mqtt.stats_interval_s
        while not stop.wait(0.5):
            self.loader.follow_links()
            self.telemetry.set_outbox_depth(self.journal.outbox_depth())
            if self.link is not None:
                self.telemetry.set_mqtt(self.link.connected)
            self.readiness()
            # Idle, or waiting for the journal to take writes again (a restart would not help);
            # an input that could not even be given up stops the pets: systemd restarts us.
            waiting = self.queue.empty() or (len(self.retry) and self.retry.is_alive())
            if waiting and not self.retry.stuck and all(w.is_alive() for w in self._workers):
                self.watchdog.progress()
            self.watchdog.tick()
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.config.mqtt.stats_interval_s
                self._publish_stats()

    # -- readiness, status, models --------------------------------------------------------
    def readiness(self) -> tuple[bool, dict]:
        """Ready when no reason holds; the details carry the reasons and what was measured.

        Every assessment is followed (log, gauges, STATUS=, retained status), so that what
        /readyz answers and what /metrics and the log say never disagree."""
        reasons, details = self._readiness_report()
        self._follow_readiness(reasons, details["model_notices"])
        return not reasons, details

    def _readiness_report(self) -> tuple[list[Reason], dict]:
        loaded = self.registry.versions()
        enabled = self.config.enabled_connectors()
        inputs_alive = all(w.is_alive() for w in self._watchers)
        workers_alive = all(w.is_alive() for w in self._workers)
        depth = self.journal.outbox_depth()
        storage = self._storage_report()
        reasons = [
            *connector_reasons(enabled, loaded, self.model_errors),
            *pipeline_reasons(inputs_alive, workers_alive, self._stopping.is_set()),
            *outbox_reasons(depth, self.config.health.max_outbox),
            *storage_reasons(storage),
            *assess(self.readiness_checks),
        ]
        details = {
            "session": self.session,
            "reasons": [reason.as_dict() for reason in reasons],
            "models_missing": [cid for cid in enabled if cid not in loaded],
            "inputs_alive": inputs_alive,
            "workers_alive": workers_alive,
            "outbox_depth": depth,
            "mqtt_connected": bool(self.link and self.link.connected),
            "storage": storage,
            # Files changed under a running model (it keeps inspecting): shown, never a reason.
            "model_notices": self.registry.notices(),
            # The OPC UA server's heartbeat (its own unit): shown, never a reason.
            "opcua": opcua_report(self.config.paths.state, self.config.opcua.enabled),
            # Drift states (a drifting station still inspects): shown, never a reason.
            "drift": self.drift.summaries(),
            # A new connector layout in config.toml that needs a restart: shown, never a reason.
            "layout_notice": self.layout_notice,
        }
        return reasons, details

    def _link_reasons(self) -> list[Reason]:
        if self.link is None:
            return []
        return link_reasons(self.link.health, self.config.mqtt, self.config.health.mqtt_down_max_s)

    def _storage_report(self) -> dict:
        """The journal's and the state disk's health; not ok while boards wait for a retry."""
        report = self.storage.report()
        report["journal_backlog"] = backlog = len(self.retry)
        report["waiting_input"] = self.retry.waiting
        report["stuck_input"] = self.retry.stuck
        report["ok"] = report["ok"] and not backlog
        return report

    def _follow_readiness(self, reasons: list[Reason], notices: dict[str, str]) -> None:
        """Log, count, tell systemd (STATUS=) and re-publish (retained status) each change of
        the readiness reasons or of the model notices."""
        changed = self.readiness_watch.follow(reasons)
        notices_changed, self._model_notices = notices != self._model_notices, notices
        if not (changed or notices_changed):
            return
        sdnotify.status("; ".join(f"not ready: {r.reason}" for r in reasons) or "ready")
        if self.link is not None:
            self.link.publish_state("status", self._birth())

    def _birth(self) -> dict:
        reasons, details = self._readiness_report()
        ready = not reasons
        return {
            "state": "online" if ready else "degraded",
            "ready": ready,
            "reasons": details["reasons"],
            "storage": details["storage"],
            "model_notices": details["model_notices"],
            "drift": details["drift"],
            "node": self.node,
            "session": self.session,
            "station": self.config.station.name,
            "software": f"edge-inspect {__version__}",
            "config_sha256": self.config_sha256,
            "models": self.registry.versions(),
        }

    def _publish_status(self) -> None:
        if self.link is not None:
            self.link.publish_state("status", self._birth())

    def _announce_models(self) -> None:
        versions = self.registry.versions()
        self.drift.models({connector: info["version"] for connector, info in versions.items()})
        for connector, info in versions.items():
            self.telemetry.set_model(connector, info["version"], info["sha256"])
            if self.link is not None:
                payload = {"connector": connector, **info, **self.feedback.model_info(connector)}
                self.link.publish_state(f"model/{connector}", payload)

    def _follow_model_links(self) -> None:
        """One pass over the `active` and `candidate` links (model-loader thread)."""
        self.refresh_models()
        if self.feedback.follow_links():
            self._announce_models()

    def refresh_models(self) -> list:
        """Follow `active` links; announce swaps, log refusals (the old model stays)."""
        changes = self.registry.refresh()
        for change in changes:
            if not change.accepted and self.registry.get(change.connector) is None:
                self.model_errors[change.connector] = change.error or ""
        if any(change.accepted for change in changes):
            self._announce_models()
            if self.link is not None:
                self.link.publish_state("status", self._birth())
        return changes

    def _publish_stats(self) -> None:
        if self.link is not None:
            payload = self.boards.stats.payload(self.session, self.journal.outbox_depth())
            self.link.publish_volatile("stats", payload)

    def _on_image(self, topic: str, payload: bytes, properties: MessageProperties) -> bool:
        return self.spool.on_message(
            topic, payload, properties, properties.packet_id, properties.redelivered
        )

    def _on_command(self, topic: str, payload: bytes, properties: dict) -> None:
        """On paho's thread: hand the command to the model loader, which replies when done."""
        name = topic.rsplit("/", 1)[-1]
        self.loader.submit(
            lambda: dispatch(
                name,
                payload,
                lifecycle=self.feedback.command,
                refresh=self.refresh_models,
                relayout=self._relayout,
            ),
            lambda reply: self._reply(properties, reply),
        )

    def _relayout(self, payload: bytes) -> dict | None:
        """`cmd/reload`'s layout part (model-loader thread): see `feedback/relayout.py`."""
        try:
            install, by = parse_install(payload)
        except ValueError as exc:
            log.warning("model_command_refused", command="reload", error=str(exc))
            return {"ok": False, "error": str(exc)}
        if self.config_path is None and not install:
            return None  # started from settings alone: no file to re-read
        try:
            if self.config_path is None:
                raise RelayoutRefused("the agent was started without a config file: restart it")
            relayout = prepare(self.config_path, self.config, self.registry, install, by)
            if relayout is None:
                return {"ok": True, "changed": []}
            new = relayout.config
            inspector = self.inspector.with_config(new)
        except (RelayoutRefused, ConfigError, BundleError, LifecycleError, OSError) as exc:
            self.layout_notice = str(exc)
            log.error("layout_not_taken_up", error=str(exc), remedy="restart the agent")
            return {"ok": False, "error": str(exc)}
        sizes = {cid: c.crop_size for cid, c in new.connectors.items()}
        self.boards.swap_layout(
            new,
            inspector,
            lambda: self.registry.relayout(new.enabled_connectors(), sizes, relayout.models),
        )
        self.config, self.inspector, self.feedback.config = new, inspector, new
        self.config_sha256 = hashlib.sha256(new.model_dump_json().encode()).hexdigest()
        self.model_errors = {c: e for c, e in self.model_errors.items() if c not in relayout.models}
        self.layout_notice = None
        log.info("layout_taken_up", changed=relayout.changed, installed=relayout.installed)
        self._announce_models()
        self._publish_status()
        return {"ok": True, "changed": relayout.changed, "installed": relayout.installed}

    def _reply(self, properties: dict, reply: dict) -> None:
        if self.link is not None:
            self.link.reply(properties, reply)

    # -- inputs ---------------------------------------------------------------------------
    def _submit(self, work: BoardWork) -> None:
        """Called by a watcher thread; blocks while the workers are busy (back-pressure)."""
        if not self._stopping.is_set():
            self.queue.put(work)

    # -- the work -------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            work = self.queue.get()
            if work is _STOP:
                return
            if not self.retry.wait_turn():  # stopping: the file stays for the next start
                continue
            try:
                self.boards.journal(work)
            except STORAGE_ERRORS:
                # The file stays where it arrived; retried with back-off, in arrival order.
                self.retry.stall(work.arrival, work)
            except Exception as exc:
                # A fault in handling this one input, not the storage: it gets an ERROR verdict
                # naming the fault instead of holding up every board behind it.
                log.exception("board handling failed", path=name_text(work.drop.path))
                self.boards.journal_or_stall(as_internal_error(work, exc), self.retry.stall)
