"""Commands on `<prefix>/cmd/<name>`: what each does and the reply it gets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class ModelChange(Protocol):
    connector: str
    new_version: str | None
    error: str | None
    accepted: bool


LIFECYCLE_COMMANDS = ("promote", "rollback")


def dispatch(
    name: str,
    payload: bytes,
    *,
    lifecycle: Callable[[str, bytes], dict[str, Any]],
    refresh: Callable[[], Sequence[ModelChange]],
    relayout: Callable[[bytes], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Run command `name`; `lifecycle` does promote/rollback, `refresh` reloads models,
    `relayout` (reload) takes up a changed connector layout of `config.toml` first."""
    if name in LIFECYCLE_COMMANDS:
        reply = lifecycle(name, payload)
        refresh()
        return reply
    if name != "reload":
        return {"command": name, "ok": False, "error": f"unknown command {name!r}"}
    layout = relayout(payload) if relayout is not None else None
    changes = refresh()
    reply = {
        "command": name,
        "ok": all(change.accepted for change in changes),
        "changes": [
            {"connector": c.connector, "version": c.new_version, "error": c.error} for c in changes
        ],
    }
    if layout is not None:
        reply["layout"] = layout
        reply["ok"] = reply["ok"] and bool(layout.get("ok"))
    return reply
