"""A new connector layout taken up by the running agent: `config.toml` re-read on `cmd/reload`.

The set-up page's "save and retrain" ends with the trainer writing the new boxes and asking the
agent to reload with the versions trained for them (`{"install": {connector: version}}`). On
the model-loader thread, `prepare` re-reads the file, installs those versions (atomic `active`
link switches, so disk and memory never disagree on which model goes with which box) and loads
every model the new boxes need; the daemon then swaps configuration, model registry and
inspector together between two boards. Anything other than the connectors changed, or a model
that does not fit its new box: nothing is swapped, the reason says a restart is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import structlog

from edge_agent.comms.payloads import json_object
from edge_agent.contracts.bundle import active_dir, misfit, read_manifest
from edge_agent.contracts.config import ConfigError, StationConfig, load_config
from edge_agent.feedback import lifecycle
from edge_agent.inspect.scoring import ConnectorModel, ModelRegistry

log = structlog.get_logger()


class RelayoutRefused(RuntimeError):
    """The new file cannot be taken up while running; the message says why and what to do."""


@dataclass
class Relayout:
    """A new layout ready to swap in: its config, and the models loaded for its boxes."""

    config: StationConfig
    models: dict[str, tuple[ConnectorModel, Path]] = field(default_factory=dict)
    installed: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)


def parse_install(payload: bytes) -> tuple[dict[str, str], str]:
    """`cmd/reload`'s payload: `{"install"?: {connector: version}, "by"?}`; ValueError if bad."""
    request = json_object(payload or b"{}", "the command payload")
    install = request.get("install") or {}
    if not isinstance(install, dict) or not all(
        isinstance(c, str) and isinstance(v, str) and v and "/" not in v and not v.startswith(".")
        for c, v in install.items()
    ):
        raise ValueError(f"install {install!r} must map connector names to version names")
    return install, str(request.get("by") or "mqtt")


# The connectors are taken up while running; the agent never reads `[training]` (a save may name
# the ROI file there).
TAKEN_UP = {"connectors", "training"}


def other_changes(old: StationConfig, new: StationConfig) -> list[str]:
    """Top-level sections that differ besides those taken up (they need a restart)."""
    before = old.model_dump(exclude=TAKEN_UP)
    after = new.model_dump(exclude=TAKEN_UP)
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def changed_connectors(old: StationConfig, new: StationConfig) -> list[str]:
    """Connectors added, removed, moved, resized, enabled or disabled."""
    ids = old.connectors.keys() | new.connectors.keys()
    return sorted(c for c in ids if old.connectors.get(c) != new.connectors.get(c))


def prepare(
    config_path: Path,
    current: StationConfig,
    registry: ModelRegistry,
    install: dict[str, str],
    by: str,
) -> Relayout | None:
    """Read `config_path`; None when its connectors are as running. Installs `install`'s
    versions, then loads each enabled connector's model for its new box (the running ones are
    kept where their bundle did not change). Raises RelayoutRefused (nothing swapped)."""
    try:
        new = load_config(config_path)
    except ConfigError as exc:
        raise RelayoutRefused(f"{config_path} cannot be read: {exc}") from None
    others = other_changes(current, new)
    if others:
        raise RelayoutRefused(
            f"{config_path}: sections {others} changed as well, which the running agent "
            "cannot take up: restart it"
        )
    models_root = new.paths.models
    installed = {}
    for connector, version in sorted(install.items()):
        if connector not in new.connectors:
            raise RelayoutRefused(f"{connector} is not a connector of {config_path}")
        fit = misfit(
            read_manifest(models_root / connector / version),
            connector,
            new.connectors[connector].crop_size,
        )
        if fit is not None:
            raise RelayoutRefused(f"{connector} {version}: {fit}")
        lifecycle.install(models_root, connector, version, by, reason="new box")
        installed[connector] = version
    changed = changed_connectors(current, new)
    if not changed and not installed:
        return None
    relayout = Relayout(new, installed=installed, changed=changed)
    for connector in new.enabled_connectors():
        target = active_dir(models_root, connector)
        if target is None:
            raise RelayoutRefused(f"{connector} has no active model for its box: restart needed")
        running = registry.get(connector)
        model = (
            running
            if running is not None and running.path == target
            else registry.load_bundle(target, registry.threads)
        )
        fit = misfit(model.manifest, connector, new.connectors[connector].crop_size)
        if fit is not None:
            raise RelayoutRefused(
                f"{target}: {fit}; the running layout keeps inspecting: restart needed"
            )
        relayout.models[connector] = (model, target)
    return relayout
