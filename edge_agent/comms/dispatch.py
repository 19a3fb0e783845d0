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
) -> dict[str, Any]:
    """Run command `name`; `lifecycle` does promote/rollback, `refresh` reloads models."""
    if name in LIFECYCLE_COMMANDS:
        reply = lifecycle(name, payload)
        refresh()
        return reply
    if name != "reload":
        return {"command": name, "ok": False, "error": f"unknown command {name!r}"}
    changes = refresh()
    return {
        "command": name,
        "ok": all(change.accepted for change in changes),
        "changes": [
            {"connector": c.connector, "version": c.new_version, "error": c.error} for c in changes
        ],
    }
