"""Timestamps as every record of the product writes them."""

from __future__ import annotations

import datetime as dt


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a Z suffix."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
