"""A connector's model lifecycle on disk: active, candidate, promote, rollback, refusals.

<models>/<connector>/active -> <version>       what the agent scores with
<models>/<connector>/candidate -> <version>    a gated model in shadow (scored, never decides)
<models>/<connector>/history.json              the activation stack (for rollback) and events
<models>/<connector>/rejected/<version>/       refused candidates, each with reason.json

Every change holds the connector's lock (`flock` on `.lock`), so the agent's command topics,
the `models` command and the trainer can act at the same time. Links switch atomically.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_agent.contracts.atomic import move_atomic, replace_symlink, write_json_atomic
from edge_agent.contracts.bundle import (
    ACTIVE_LINK,
    REJECTED_DIR,
    BundleError,
    activate,
    connector_dir,
    list_versions,
    misfit,
    read_manifest,
    verify_bundle,
    version_key,
)
from edge_agent.contracts.clock import utc_now

CANDIDATE_LINK = "candidate"
HISTORY_FILE = "history.json"
LOCK_FILE = ".lock"
REASON_FILE = "reason.json"
MAX_EVENTS = 100
MAX_STACK = 50
ACTIVATING = ("installed", "promoted", "rolled_back")


class LifecycleError(RuntimeError):
    """A lifecycle step that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class ModelState:
    """Where a connector's models stand."""

    connector: str
    active: str | None
    candidate: str | None
    rollback_to: str | None
    versions: list[str]
    rejected: list[str]
    last_event: dict | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def connector_lock(models_root: Path, connector: str) -> Iterator[None]:
    """Hold the connector's lifecycle lock (blocking) for one change."""
    folder = connector_dir(models_root, connector)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def link_target(models_root: Path, connector: str, name: str) -> str | None:
    """The version a link (`active`, `candidate`) names, when it exists and holds a bundle."""
    link = connector_dir(models_root, connector) / name
    if not link.is_symlink():
        return None
    target = link.resolve()
    return target.name if target.is_dir() else None


def read_history(models_root: Path, connector: str) -> dict[str, list]:
    """The activation stack and the recent events; empty when none were recorded yet."""
    path = connector_dir(models_root, connector) / HISTORY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"stack": [], "events": []}
    except ValueError as exc:
        raise LifecycleError(f"{path}: unreadable history: {exc}") from None
    return {"stack": list(data.get("stack", [])), "events": list(data.get("events", []))}


def _save(models_root: Path, connector: str, history: dict[str, list]) -> None:
    history["stack"] = history["stack"][-MAX_STACK:]
    history["events"] = history["events"][-MAX_EVENTS:]
    write_json_atomic(connector_dir(models_root, connector) / HISTORY_FILE, history)


def _event(history: dict[str, list], event: str, version: str | None, by: str, **extra) -> dict:
    entry = {"at": utc_now(), "event": event, "version": version, "by": by, **extra}
    history["events"].append(entry)
    return entry


def unfit_reason(
    models_root: Path, connector: str, version: str, crop_size: tuple[int, int] | None
) -> str | None:
    """Why `version` cannot score `connector` (unreadable manifest, another connector's bundle,
    another input size than the box's `crop_size`); None when it fits."""
    try:
        manifest = read_manifest(connector_dir(models_root, connector) / version)
    except (BundleError, OSError) as exc:
        return str(exc)
    return misfit(manifest, connector, crop_size)


def _rollback_target(history: dict[str, list], versions: list[str], active: str) -> str | None:
    """The version before `active` on the stack, else the newest older one that was ever active
    (`versions`: only those a rollback could load)."""
    stack = [v for v in history["stack"] if v in versions]
    if len(stack) >= 2 and stack[-1] == active:
        return stack[-2]
    activated = set(stack) | {e["version"] for e in history["events"] if e["event"] in ACTIVATING}
    shadow_only = {e["version"] for e in history["events"] if e["event"] == "candidate"}
    older = [
        v
        for v in versions
        if version_key(v) < version_key(active) and (v in activated or v not in shadow_only)
    ]
    return older[-1] if older else None


def state(
    models_root: Path, connector: str, crop_size: tuple[int, int] | None = None
) -> ModelState:
    """Active, candidate, the version a rollback would restore, installed and refused versions.
    A version that does not fit the connector (`unfit_reason`) is never the rollback target."""
    versions = list_versions(models_root, connector)
    usable = [v for v in versions if unfit_reason(models_root, connector, v, crop_size) is None]
    active = link_target(models_root, connector, ACTIVE_LINK)
    history = read_history(models_root, connector)
    rejected_dir = connector_dir(models_root, connector) / REJECTED_DIR
    rejected = sorted(
        (p.name for p in rejected_dir.iterdir() if p.is_dir()) if rejected_dir.is_dir() else [],
        key=version_key,
    )
    return ModelState(
        connector=connector,
        active=active,
        candidate=link_target(models_root, connector, CANDIDATE_LINK),
        rollback_to=_rollback_target(history, usable, active) if active else None,
        versions=versions,
        rejected=rejected,
        last_event=history["events"][-1] if history["events"] else None,
    )


def _switch(models_root: Path, connector: str, version: str, event: str, by: str, **extra) -> dict:
    """Activate `version`, push it on the stack and record the event (lock held by the caller)."""
    history = read_history(models_root, connector)
    previous = link_target(models_root, connector, ACTIVE_LINK)
    activate(models_root, connector, version)
    stack = history["stack"]
    if event == "rolled_back":
        if stack and stack[-1] == previous:
            stack.pop()
    elif previous and (not stack or stack[-1] != previous):
        stack.append(previous)
    if not stack or stack[-1] != version:
        stack.append(version)
    if link_target(models_root, connector, CANDIDATE_LINK) == version:
        (connector_dir(models_root, connector) / CANDIDATE_LINK).unlink()
    entry = _event(history, event, version, by, previous=previous, **extra)
    _save(models_root, connector, history)
    return entry


def install(models_root: Path, connector: str, version: str, by: str, **extra) -> dict:
    """Make a freshly gated version active (rollout `auto`)."""
    with connector_lock(models_root, connector):
        return _switch(models_root, connector, version, "installed", by, **extra)


def promote(
    models_root: Path,
    connector: str,
    version: str | None = None,
    by: str = "operator",
    expect_candidate: str | None = None,
    crop_size: tuple[int, int] | None = None,
) -> dict:
    """Activate `version`, or the candidate when None; with `expect_candidate`, only that one.
    A version that does not fit the connector (`crop_size`: its box's crop) is refused."""
    with connector_lock(models_root, connector):
        candidate = link_target(models_root, connector, CANDIDATE_LINK)
        if expect_candidate is not None and candidate != expect_candidate:
            raise LifecycleError(
                f"{connector}: candidate is {candidate or 'none'} now, not {expect_candidate}"
            )
        target = candidate if version is None else version  # "" names no version: refused
        if target is None:
            raise LifecycleError(f"{connector}: no candidate to promote (name a version)")
        if target not in list_versions(models_root, connector):
            raise LifecycleError(f"{connector}: version {target!r} is not installed")
        if target == link_target(models_root, connector, ACTIVE_LINK):
            raise LifecycleError(f"{connector}: version {target} is already active")
        unfit = unfit_reason(models_root, connector, target, crop_size)
        if unfit is not None:
            raise LifecycleError(f"{connector}: version {target} {unfit}")
        return _switch(models_root, connector, target, "promoted", by)


def rollback(
    models_root: Path,
    connector: str,
    by: str = "operator",
    crop_size: tuple[int, int] | None = None,
) -> dict:
    """Restore the version that was active before the current one (one that fits)."""
    with connector_lock(models_root, connector):
        current = state(models_root, connector, crop_size)
        if current.active is None:
            raise LifecycleError(f"{connector}: no active model to roll back")
        if current.rollback_to is None:
            raise LifecycleError(f"{connector}: no earlier version to roll back to")
        return _switch(
            models_root, connector, current.rollback_to, "rolled_back", by, replaced=current.active
        )


def set_candidate(models_root: Path, connector: str, version: str, by: str, **extra) -> dict:
    """Point `candidate` at a gated version (rollout `shadow`); it replaces any earlier one."""
    with connector_lock(models_root, connector):
        root = connector_dir(models_root, connector)
        verify_bundle(root / version)
        history = read_history(models_root, connector)
        replaced = link_target(models_root, connector, CANDIDATE_LINK)
        replace_symlink(root / CANDIDATE_LINK, version)
        entry = _event(history, "candidate", version, by, replaced=replaced, **extra)
        _save(models_root, connector, history)
        return entry


def refuse(
    models_root: Path, connector: str, bundle_dir: Path, version: str, by: str, reason: dict
) -> Path:
    """Move a refused bundle to `rejected/<version>` with its reason.json, and record it."""
    bundle_dir = Path(bundle_dir)
    write_json_atomic(bundle_dir / REASON_FILE, {"version": version, "at": utc_now(), **reason})
    with connector_lock(models_root, connector):
        target = connector_dir(models_root, connector) / REJECTED_DIR / version
        if target.exists():
            raise LifecycleError(f"{target}: a refused version of that name exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        move_atomic(bundle_dir, target)
        history = read_history(models_root, connector)
        _event(history, "refused", version, by, reason=reason.get("summary"))
        _save(models_root, connector, history)
    return target


def prune_versions(models_root: Path, connector: str, keep: int) -> list[str]:
    """Delete installed and refused versions beyond the newest `keep` (never active/candidate)."""
    removed = []
    with connector_lock(models_root, connector):
        history = read_history(models_root, connector)
        protected = {
            link_target(models_root, connector, ACTIVE_LINK),
            link_target(models_root, connector, CANDIDATE_LINK),
            *history["stack"][-keep:],
        }
        root = connector_dir(models_root, connector)
        versions = list_versions(models_root, connector)
        for version in versions[: max(0, len(versions) - keep)]:
            if version not in protected:
                shutil.rmtree(root / version)
                removed.append(version)
        rejected = state(models_root, connector).rejected
        for version in rejected[: max(0, len(rejected) - keep)]:
            shutil.rmtree(root / REJECTED_DIR / version)
            removed.append(f"{REJECTED_DIR}/{version}")
    return removed


def lifecycle_info(
    models_root: Path, connector: str, crop_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """What the retained `model/<connector>` message adds to the active version."""
    current = state(models_root, connector, crop_size)
    return {
        "candidate": current.candidate,
        "rollback_to": current.rollback_to,
        "last_event": current.last_event,
    }


def signature(models_root: Path, connector: str) -> tuple:
    """Cheap identity of a connector's lifecycle files, to notice changes made elsewhere."""
    root = connector_dir(models_root, connector)
    try:
        stamp = (root / HISTORY_FILE).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return (
        stamp,
        link_target(models_root, connector, ACTIVE_LINK),
        link_target(models_root, connector, CANDIDATE_LINK),
    )
