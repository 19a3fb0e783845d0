""" "Save and retrain": a layout that changes a model's input, waiting for the trainer.

The set-up page writes the request to `<state>/setup-pending.json` (the whole layout, the
sha256 of the `config.toml` it was based on, the connectors whose model input changes, who and
when) and leaves `config.toml` alone. `edge-inspect retrain-layout` trains a model for each of
those connectors from the stored boards, then writes the layout and installs the models
together; it reports its progress and outcome in `<state>/retrain/layout-status.json`. The page
shows both in plain words and can cancel a request (the file is removed; a run going on
switches nothing).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from edge_agent.console.setup_backups import who_changed
from edge_agent.console.station_setup import Layout, SetupError, StaleConfig, model_input
from edge_agent.console.station_setup import _check as check_geometry
from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import StationConfig

REQUEST_FILE = "setup-pending.json"
STATUS_FILE = "retrain/layout-status.json"
SCHEMA = "edge-inspect.setup-pending/1"


def request_path(config: StationConfig) -> Path:
    return config.paths.state / REQUEST_FILE


def status_path(config: StationConfig) -> Path:
    return config.paths.state / STATUS_FILE


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data)


def read_request(config: StationConfig) -> dict[str, Any] | None:
    """The pending request, or None."""
    request = _read(request_path(config))
    return request if request is not None and request.get("schema") == SCHEMA else None


def read_status(config: StationConfig) -> dict[str, Any] | None:
    """The trainer's last report on a request (running, failed, done), or None."""
    return _read(status_path(config))


def input_changes(layout: Layout, models_root: Path) -> dict[str, dict[str, list[int]]]:
    """Connectors whose box no longer fits their active model: {id: {"model": [w, h],
    "box": [w, h]}}."""
    changes = {}
    for c in layout.connectors:
        size = model_input(models_root, c.id)
        if size is not None and size != (c.box[2], c.box[3]):
            changes[c.id] = {"model": list(size), "box": [c.box[2], c.box[3]]}
    return changes


def write_request(
    config_path: Path,
    config: StationConfig,
    layout: Layout,
    reference_size: tuple[int, int],
    by: str,
) -> dict[str, Any]:
    """Check the layout as a save would, then write the request; `config.toml` is untouched."""
    check_geometry(layout, reference_size)  # the same checks as a save
    current = hashlib.sha256(Path(config_path).read_bytes()).hexdigest()
    if layout.base_sha256 is not None and layout.base_sha256 != current:
        raise StaleConfig(
            f"{Path(config_path).name} changed since this page was loaded "
            f"({who_changed(Path(config_path), current)}): reload the page"
        )
    if read_request(config) is not None:
        raise SetupError("a save-and-retrain request is already pending: cancel it first")
    changes = input_changes(layout, config.paths.models)
    if not changes:
        raise SetupError("no box changes its model's input: save it without retraining")
    request = {
        "schema": SCHEMA,
        "id": f"layout-{secrets.token_hex(4)}",
        "layout": layout.model_dump(mode="json", exclude={"base_sha256"}),
        "base_sha256": current,
        "connectors": changes,
        "by": by,
        "at": utc_now(),
    }
    _write(request_path(config), request)
    return request


def cancel_request(config: StationConfig, by: str) -> dict[str, Any] | None:
    """Remove the pending request (None when there was none); a run going on switches nothing."""
    request = read_request(config)
    if request is None:
        return None
    request_path(config).unlink(missing_ok=True)
    _write(
        status_path(config),
        {
            "id": request["id"],
            "state": "cancelled",
            "message": f"cancelled by {by}; nothing was changed",
            "at": utc_now(),
        },
    )
    return request


def describe(config: StationConfig) -> dict[str, Any] | None:
    """The request and its progress in plain words, for the set-up page."""
    request, status = read_request(config), read_status(config)
    if request is None and status is None:
        return None
    if request is not None:
        sizes = ", ".join(
            f"{c} {v['model'][0]}x{v['model'][1]} -> {v['box'][0]}x{v['box'][1]}"
            for c, v in request["connectors"].items()
        )
        text = (
            f"Save and retrain asked by {request['by']} at {request['at']} ({sizes}). The line "
            "inspects with the current boxes until the new models are trained and installed."
        )
        if status is not None and status.get("id") == request["id"]:
            text += f" {status.get('message', '')}"
        else:
            text += " Waiting for the trainer."
        return {"pending": True, "id": request["id"], "text": text}
    return {"pending": False, "id": status.get("id"), "text": (status or {}).get("message", "")}
