"""A watch's series of floats as stored in its `drift_states` detail: packed float64 bytes in
base64, written every few boards, so that a restart takes up the exact values at a small cost
(JSON numbers cost 20 times as much to write)."""

from __future__ import annotations

import array
import base64
from collections.abc import Iterable


def pack(values: Iterable[float]) -> str:
    """The values, exactly, as one ASCII string."""
    return base64.b64encode(array.array("d", values).tobytes()).decode("ascii")


def unpack(stored: str | list[float]) -> list[float]:
    """The values of `pack`; a JSON list (a row written before series were packed) as it is."""
    if isinstance(stored, list):
        return [float(v) for v in stored]
    return array.array("d", base64.b64decode(stored)).tolist()
