"""Input file names are data: a text form fit for SQLite, JSON and logs, and bounded filed names.

A camera may write any bytes the file system allows into a name: bytes that are not UTF-8
(`os.fsdecode` turns them into lone surrogates, which SQLite and UTF-8 output refuse), newlines,
leading dashes or dots, up to 255 bytes. `name_text` renders such a name as one line of UTF-8:
each byte that is not UTF-8 and each control character becomes `%XX` (its bytes, percent-
encoded); a name of plain text is unchanged, and the rendering of a rendering is itself. The
exact bytes of a name stay recorded in the input's file URI (`Path.as_uri`, percent-encoded).
`filed_name` bounds that rendering for `<result_id>_<name>` and its `.reason.txt`.
"""

from __future__ import annotations

import os
import re

FILED_NAME_MAX_BYTES = 160
"""The longest filed name part: 26 (result id) + 1 + 160 + 11 (`.reason.txt`) < 255 bytes."""
_SUFFIX_MAX_CHARS = 16
_ELLIPSIS = "~"
# Lone surrogates (bytes that were not UTF-8), C0/C1 controls, DEL, line and paragraph separators.
_UNSAFE = re.compile(r"[\udc80-\udcff\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\udc80" <= char <= "\udcff":
        return f"%{ord(char) - 0xDC00:02X}"
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))


def name_text(name: str | os.PathLike[str]) -> str:
    """A name or path as one line of valid UTF-8: undecodable bytes and controls as `%XX`."""
    return _UNSAFE.sub(_escape, os.fspath(name))


def filed_name(name: str) -> str:
    """`name_text(name)` cut to `FILED_NAME_MAX_BYTES` UTF-8 bytes, keeping a short suffix."""
    text = name_text(name)
    if len(text.encode("utf-8")) <= FILED_NAME_MAX_BYTES:
        return text
    stem, suffix = os.path.splitext(text)
    if len(suffix) > _SUFFIX_MAX_CHARS:
        stem, suffix = text, ""
    room = FILED_NAME_MAX_BYTES - len((_ELLIPSIS + suffix).encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore")  # never half a character
    return f"{cut}{_ELLIPSIS}{suffix}"
