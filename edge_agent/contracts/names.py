"""The one rule for connector ids and the other names that become paths and MQTT topic levels.

A connector id names a folder (`<models>/<id>/`, `<state>/crops/<id>/`), a topic level
(`<prefix>/heatmap/<result_id>/<id>`), a journal value and a console URL part, so it is
plain ASCII: letters, digits, '-' and '_', 1 to 64 of them. The config schema, the bundle
manifest, the journal, the console and the trainer all check it here.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

NAME_CHARACTERS = "A-Za-z0-9_-"
SAFE_NAME = re.compile(f"[{NAME_CHARACTERS}]+")
"""Camera names and inbound MQTT topic levels (always `fullmatch`ed)."""
CONNECTOR_ID_MAX = 64
CONNECTOR_ID_PATTERN = f"^[{NAME_CHARACTERS}]{{1,{CONNECTOR_ID_MAX}}}$"
"""For pydantic `pattern=` and HTML `pattern` attributes; Python code calls `is_connector_id`."""
CONNECTOR_ID = re.compile(CONNECTOR_ID_PATTERN)


def is_connector_id(value: object) -> bool:
    """Whether `value` is a valid connector id (a `$` would let a trailing newline through
    `match`: this uses `fullmatch`)."""
    return isinstance(value, str) and CONNECTOR_ID.fullmatch(value) is not None


def check_connector_id(value: str) -> str:
    """`value`, or a ValueError that states the rule."""
    if not is_connector_id(value):
        raise ValueError(
            f"connector id {value!r} must be 1 to {CONNECTOR_ID_MAX} ASCII letters, digits, "
            "'-' or '_'"
        )
    return value


ConnectorId = Annotated[str, AfterValidator(check_connector_id)]
"""A connector id in a pydantic model (config keys, manifests, console requests)."""
