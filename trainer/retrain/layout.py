"""`retrain-layout`: the set-up page's "save and retrain" request carried out.

Per connector whose model input the request changes: the station's stored board photos (filed
by the agent under `<drop>/processed/<day>/<result_id>_<name>`) are registered to the reference
and cut with the NEW box by the agent's own `Registrar` and `crop_connector`, so training and
inspection crops match. Boards whose connector was OK (and not confirmed KO since) train and
calibrate; confirmed KO boards only calibrate and check; unconfirmed NOK boards are left out.
The candidate is gated with the retrain gate's absolute checks (the active model takes another
input, so the two cannot be compared; the gate's reasons say so) and published as a new version,
not active.

Only when every changed connector has a gated model are the layout and the models switched
together: `config.toml` is written through the set-up page's save (hash-checked against the
request's base, previous file kept as a backup), then the running agent is asked to reload with
the new versions (`cmd/reload` `{"install": ...}`), which it installs and swaps in between two
boards. No agent answering: the versions are installed here and the agent takes both up at its
next start. Too few stored boards, a refusing gate, a cancelled request or a `config.toml`
changed since the request: the request fails with a message saying why, and nothing switches.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from edge_agent.comms.mqtt_once import send_command
from edge_agent.console.layout_request import read_request, request_path, status_path
from edge_agent.console.setup_backups import file_sha256
from edge_agent.console.station_setup import (
    BoxLayout,
    Layout,
    describe_changes,
    roi_to_model,
    save_layout,
)
from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.bundle import active_dir, next_version, publish_bundle, read_manifest
from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import load_config as load_station_config
from edge_agent.feedback import lifecycle
from edge_agent.inputs.filing import filed_path
from edge_agent.inspect.cropping import crop_connector
from edge_agent.inspect.imaging import DecodeError, encode_png, read_image_file
from edge_agent.inspect.registration import Registrar, RegistrationError
from edge_agent.store.crop_store import JOURNAL_FILE
from edge_agent.store.sqlite_files import connect
from trainer.datasets import in_holdout, load_crops
from trainer.retrain.dataset import in_gate, pixel_name
from trainer.retrain.gate import check_model, decide
from trainer.retrain.job import GATE_FILE, LOCK_FILE, STAGING_MODELS, RetrainBusy
from trainer.retrain.runs import retrain_root
from trainer.settings import TrainerConfig
from trainer.train_connector import train_connector

log = structlog.get_logger()

MIN_OK_BOARDS = 20  # stored boards with the connector OK that a new box's model needs at least
MAX_BOARDS = 400  # the newest stored boards looked at per connector
PROGRESS_EVERY = 10  # boards cut between two progress lines
WORK_DIR = "layout-work"
BY = "retrain-layout"
RELOAD_TIMEOUT_S = 60.0  # for the running agent to take up the new layout and its models


class LayoutFailed(RuntimeError):
    """The request cannot be carried out; the message says why and that nothing switched."""


@dataclass(frozen=True)
class StoredBoard:
    """One stored photo and what is known of the connector on it: "ok" or "ko"."""

    result_id: str
    photo: Path
    label: str


def stored_boards(config: TrainerConfig, connector: str, limit: int = MAX_BOARDS):
    """The newest inspected boards of the journal whose photo is still filed, labelled for
    `connector`: its latest confirmation, else its verdict when that was OK."""
    if not (config.paths.state / JOURNAL_FILE).is_file():
        return []
    db = connect(config.paths.state / JOURNAL_FILE, read_only=True)
    try:
        rows = db.execute(
            "SELECT result_id, source_path, verdict_json FROM inspections"
            " WHERE evaluation IN ('OK', 'NOK') AND source_path IS NOT NULL"
            " ORDER BY rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        confirmed = dict(
            db.execute(
                "SELECT result_id, label FROM confirmations f WHERE connector = ? AND id ="
                " (SELECT MAX(id) FROM confirmations g WHERE g.result_id = f.result_id"
                " AND g.connector = f.connector)",
                (connector,),
            ).fetchall()
        )
    finally:
        db.close()
    boards = []
    for result_id, source_path, verdict_json in rows:
        rows_of = {c.get("id"): c for c in json.loads(verdict_json).get("connectors", [])}
        evaluation = rows_of.get(connector, {}).get("evaluation")
        label = confirmed.get(result_id) or ("OK" if evaluation == "OK" else None)
        source = Path(source_path)
        photo = filed_path(source.parent, "processed", result_id, source.name)
        if label is not None and photo.is_file():
            boards.append(StoredBoard(result_id, photo, label.lower()))
    return boards


def cut_crops(
    registrar: Registrar, boards: list[StoredBoard], box: tuple[int, int, int, int], connector: str
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The new box cut from each board, as the agent cuts it: ({name: crop} OK, KO, skipped)."""
    ok, ko, skipped = {}, {}, 0
    for done, board in enumerate(boards, 1):
        try:
            image = read_image_file(board.photo)
            crop = crop_connector(image, registrar.register(image), box)
        except (OSError, DecodeError, RegistrationError) as exc:
            log.warning("layout_board_skipped", result_id=board.result_id, error=str(exc))
            skipped += 1
            continue
        (ok if board.label == "ok" else ko)[pixel_name(crop)] = crop
        if done % PROGRESS_EVERY == 0 or done == len(boards):
            log.info("layout_retrain_progress", connector=connector, cut=done, of=len(boards))
    return ok, ko, skipped


def _write(folder: Path, crops: dict[str, Any], names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(encode_png(crops[name]))
    return [folder / name for name in names]


def train_for_box(
    config: TrainerConfig,
    connector: str,
    box: tuple[int, int, int, int],
    roi: tuple[int, int, int, int] | None,
    registrar: Registrar,
) -> dict[str, Any]:
    """Cut, train, calibrate and gate one connector's model for `box`; the gated version is
    published (not active). Raises LayoutFailed with the reason otherwise."""
    boards = stored_boards(config, connector)
    n_ok = sum(b.label == "ok" for b in boards)
    if n_ok < MIN_OK_BOARDS:
        raise LayoutFailed(
            f"{connector}: {n_ok} stored boards with {connector} OK, at least {MIN_OK_BOARDS} "
            "are needed to train a model for the new box; let the line inspect more boards "
            "with the current box, then ask again; nothing was changed"
        )
    log.info("layout_retrain_cutting", connector=connector, boards=len(boards), box=list(box))
    ok, ko, skipped = cut_crops(registrar, boards, box, connector)
    held = sorted(n for n in ok if in_holdout(Path(n), config.training.holdout_fraction))
    train = sorted(n for n in ok if n not in set(held))
    gate = [n for n in held if in_gate(n, config.retrain.gate_share)]
    calibration = [n for n in held if n not in set(gate)]
    while len(calibration) < 2 and len(gate) > 1:
        calibration.append(gate.pop())
    if len(train) < MIN_OK_BOARDS // 2 or len(calibration) < 2 or not gate:
        raise LayoutFailed(
            f"{connector}: {len(ok)} usable OK crops of the new box ({skipped} boards could not "
            f"be cut), at least {MIN_OK_BOARDS} are needed; nothing was changed"
        )
    models = config.paths.models
    work = retrain_root(config) / WORK_DIR / connector
    staging = models / STAGING_MODELS
    shutil.rmtree(work, ignore_errors=True)
    try:
        _write(work / "train" / "ok", ok, train)
        _write(work / "val" / "ok", ok, calibration)
        gate_paths = _write(work / "test" / "ok", ok, gate)
        ko_paths = _write(work / "test" / "ko", ko, sorted(ko))
        _write(work / "val" / "ko", ko, sorted(ko))
        version = next_version(models, connector)
        log.info("layout_retrain_training", connector=connector, version=version, train=len(train))
        outcome = train_connector(
            work,
            staging,
            config.training,
            connector=connector,
            roi=roi,
            activate_bundle=False,
            version=version,
        )
        bundle = outcome.bundle_dir
        size = (box[3], box[2])
        decision = decide(
            check_model(bundle, load_crops(gate_paths, size), load_crops(ko_paths, size)),
            None,
            config.retrain.false_reject_tolerance,
        )
        active = active_dir(models, connector)
        old = read_manifest(active).input if active is not None else None
        if old is not None:  # not "no active model": there is one, for the old box
            decision.reasons = [r.replace("; no active model", "") for r in decision.reasons]
            decision.reasons.append(
                f"the active {active.name} takes {old.width}x{old.height} crops, the new box "
                f"cuts {box[2]}x{box[3]}: the two models cannot be compared on the same crops"
            )
        gate_record = decision.as_dict()
        if not decision.accepted:
            lifecycle.refuse(models, connector, bundle, version, BY, gate_record)
            raise LayoutFailed(
                f"{connector}: the gate refused the new model ({decision.summary}); "
                "nothing was switched"
            )
        write_json_atomic(bundle / GATE_FILE, gate_record)
        publish_bundle(bundle, models, connector, version)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging / connector, ignore_errors=True)
    log.info("layout_retrain_gated", connector=connector, version=version, gate=decision.summary)
    return {
        "version": version,
        "gate": decision.summary,
        "counts": {"train": len(train), "calibration_ok": len(calibration), "gate_ok": len(gate)}
        | {"ko": len(ko), "skipped": skipped},
    }


def _still_asked(config: TrainerConfig, request: dict[str, Any]) -> None:
    current = read_request(config)
    if current is None or current.get("id") != request["id"]:
        raise LayoutFailed("the request was cancelled: nothing was switched")


def switch(
    config_path: Path, config: TrainerConfig, request: dict[str, Any], versions: dict[str, str]
) -> str:
    """Write the request's layout, then have the agent install and take up the new versions
    together; returns what happened, in words."""
    _still_asked(config, request)
    if file_sha256(config_path) != request["base_sha256"]:
        raise LayoutFailed(
            f"{config_path.name} changed since the request was made: nothing was switched "
            f"(the new models {versions} stay inactive); make the change again on the set-up page"
        )
    station = load_station_config(config_path)
    models = config.paths.models
    boxes = [BoxLayout.model_validate(c) for c in request["layout"]["connectors"]]
    # a connector that has no model (nor a new one) is written disabled, as a save does
    boxes = [
        c.model_copy(update={"enabled": False})
        if c.id not in versions and active_dir(models, c.id) is None
        else c
        for c in boxes
    ]
    layout = Layout(connectors=boxes, base_sha256=request["base_sha256"])
    reference = read_image_file(station.station.reference_image)
    changes = describe_changes(station, layout) + [
        f"{c} model {v} (save and retrain)" for c, v in sorted(versions.items())
    ]
    save_layout(
        config_path,
        station,
        layout,
        (reference.shape[1], reference.shape[0]),
        by=f"{request['by']} (save and retrain)",
        changes=changes,
    )
    log.info("layout_written", config=str(config_path), versions=versions)
    outcome = send_command(
        config.mqtt, "reload", "retrain-layout", RELOAD_TIMEOUT_S, {"install": versions, "by": BY}
    )
    if outcome.reply is None:
        log.warning("agent_reload_unanswered", error=outcome.error)
    layout_reply = (outcome.reply or {}).get("layout") or {}
    if layout_reply.get("ok"):
        return f"the agent took up the new layout with {versions} while running"
    for connector, version in versions.items():  # on disk, config and models go together
        try:
            if lifecycle.link_target(models, connector, "active") != version:
                lifecycle.install(models, connector, version, BY, reason="new box")
        except (OSError, lifecycle.LifecycleError) as exc:
            raise LayoutFailed(
                f"{config_path.name} was written but {connector} {version} could not be "
                f"installed ({exc}): `edge-inspect models promote {connector} {version}`, "
                "then restart the agent"
            ) from None
    why = layout_reply.get("error") or "no agent answered cmd/reload"
    log.warning("layout_needs_restart", reason=why, remedy="restart the agent")
    return f"config.toml and the models {versions} are installed; {why}: restart the agent"


@contextmanager
def _retrain_lock(config: TrainerConfig) -> Iterator[None]:
    """The retraining job's lock: one run (nightly or layout) at a time."""
    root = retrain_root(config)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainBusy(f"{root / LOCK_FILE}: another retraining run is busy") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _status(config: TrainerConfig, request: dict[str, Any], state: str, message: str) -> None:
    status_path(config).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        status_path(config),
        {"id": request["id"], "state": state, "message": message, "at": utc_now()},
    )


def run_request(config_path: Path, config: TrainerConfig) -> dict[str, Any] | None:
    """Carry out the pending request, if any; its final status (None when none was pending)."""
    request = read_request(config)
    if request is None:
        return None
    with _retrain_lock(config):
        log.info("layout_retrain_started", request=request["id"], by=request["by"])
        try:
            registrar = Registrar(
                read_image_file(config.station.reference_image), config.registration
            )
            boxes = {c["id"]: c for c in request["layout"]["connectors"]}
            versions, reports = {}, []
            for index, connector in enumerate(sorted(request["connectors"]), 1):
                _still_asked(config, request)
                _status(
                    config,
                    request,
                    "running",
                    f"Training a model for {connector}'s new box from the stored boards "
                    f"({index} of {len(request['connectors'])}).",
                )
                box = tuple(boxes[connector]["box"])
                roi = boxes[connector].get("roi")
                size = config.training.input_size
                model_roi = tuple(roi_to_model(tuple(roi), box, size)) if roi else None
                result = train_for_box(config, connector, box, model_roi, registrar)
                versions[connector] = result["version"]
                reports.append(f"{connector} {result['version']} ({result['gate']})")
            _status(config, request, "running", "Models gated; switching layout and models.")
            outcome = switch(Path(config_path), config, request, versions)
        except Exception as exc:  # any failure ends the request with its reason, never half done
            request_path(config).unlink(missing_ok=True)
            if not isinstance(exc, LayoutFailed):
                log.exception("layout_retrain_error", request=request["id"])
                exc = LayoutFailed(f"{type(exc).__name__}: {exc}; nothing was switched")
            message = f"Save and retrain failed: {exc}."
            log.error("layout_retrain_failed", request=request["id"], error=str(exc))
            _status(config, request, "failed", message)
            return {"id": request["id"], "state": "failed", "message": message}
        request_path(config).unlink(missing_ok=True)
        message = f"Save and retrain done: {'; '.join(reports)}; {outcome}."
        log.info("layout_retrain_done", request=request["id"], versions=versions)
        _status(config, request, "done", message)
        return {"id": request["id"], "state": "done", "message": message, "versions": versions}
