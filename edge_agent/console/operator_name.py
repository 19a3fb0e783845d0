"""The operator name a console without users records confirmations under: a person's name in
any script (letters, digits, spaces and - . ' ’ _ @), kept in a cookie percent-encoded."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote

MAX_LENGTH = 64
PUNCTUATION = " -.'’_@"
RULE = f"letters, digits, spaces and {' '.join(PUNCTUATION.strip())} only, {MAX_LENGTH} at most"


class NameRefused(ValueError):
    """The name cannot be kept; the message says why, for the operator."""


def normal_name(typed: str) -> str:
    """The name as kept: NFC, outer spaces trimmed, inner runs of spaces made one."""
    return " ".join(unicodedata.normalize("NFC", typed).split())


def checked_name(typed: str) -> str:
    """The name to keep, or NameRefused saying which rule it breaks."""
    name = normal_name(typed)
    if not name:
        raise NameRefused("the operator name is empty: type a name")
    if len(name) > MAX_LENGTH:
        raise NameRefused(f"the operator name is {len(name)} characters long: {RULE}")
    wrong = sorted({ch for ch in name if not (ch.isalnum() or ch in PUNCTUATION)})
    if wrong:
        shown = " ".join(repr(ch) for ch in wrong)
        raise NameRefused(f"the operator name may not hold {shown}: {RULE}")
    if not any(ch.isalnum() for ch in name):
        raise NameRefused(f"the operator name needs a letter or a digit: {RULE}")
    return name


def cookie_value(name: str) -> str:
    """The name as a cookie value (ASCII)."""
    return quote(name, safe="")


def from_cookie(value: str | None) -> str | None:
    """The name a cookie holds, or None when it holds no acceptable name."""
    try:
        return checked_name(unquote(value or "", errors="strict"))
    except (NameRefused, UnicodeDecodeError):
        return None
