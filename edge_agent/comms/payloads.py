"""Inbound JSON payloads (`confirm`, `cmd/*`): one JSON object, or a ValueError saying why not."""

from __future__ import annotations

import json
from typing import Any


def json_object(payload: bytes, what: str) -> dict[str, Any]:
    """The payload as a JSON object; the ValueError's message starts with `what`."""
    try:
        data = json.loads(payload)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError:  # UnicodeDecodeError included
        raise ValueError(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} holds text that is not Unicode (a lone surrogate)") from None
    return data
