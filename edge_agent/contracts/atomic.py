"""Atomic writes: a reader sees the old file or the new one, never half of one, even after a crash.

Every write goes to a hidden temporary name in the same folder, is fsync'd, renamed over the
target, and the folder is fsync'd so that the rename itself survives a power cut.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries (renames, new names), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """A fresh hidden name beside `path`, unique across processes and threads."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to fill; on success it replaces `path` (file and folder fsync'd)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, payload: Any) -> None:
    """`payload` as indented JSON (a string is written as it is)."""
    write_text_atomic(path, payload if isinstance(payload, str) else json.dumps(payload, indent=2))


def replace_symlink(link: Path, target: str) -> None:
    """Point `link` at `target`: a new symlink renamed over the old one, the folder fsync'd."""
    link = Path(link)
    tmp = temporary_name(link)
    tmp.unlink()  # the name stays ours: mkstemp made it with a random part
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync(link.parent)


def move_atomic(source: Path, target: Path) -> None:
    """Rename a fully written file or folder into place and make the rename durable."""
    os.replace(source, target)
    _fsync(Path(target).parent)
