"""Timestamped backups of `config.toml`, one per set-up save, the newest `KEPT_BACKUPS` kept.

Each save first copies the file it replaces to `config-backups/<stamp>.toml` beside the config
and records `<stamp>.json`: when, by whom, what the save changed, and the hash of the file the
save wrote (so a stale page can be told who changed the file since it was loaded).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge_agent.contracts.atomic import move_atomic, temporary_name, write_json_atomic

KEPT_BACKUPS = 10
BACKUP_DIR = "config-backups"


@dataclass(frozen=True)
class Backup:
    """One kept copy of the config as it was before a save."""

    name: str
    path: Path
    saved_at: str
    by: str
    changes: list[str]
    written_sha256: str


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes; the set-up page carries it to detect stale saves."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def backup_dir(config_path: Path) -> Path:
    return Path(config_path).resolve().parent / BACKUP_DIR


def keep_backup(config_path: Path, by: str, changes: list[str], written_sha256: str) -> Backup:
    """Copy the current config aside before it is replaced, then drop the oldest beyond N."""
    folder = backup_dir(config_path)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    name = now.strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{name}.toml"
    tmp = temporary_name(target)
    shutil.copy2(config_path, tmp)
    move_atomic(tmp, target)
    saved_at = now.isoformat(timespec="seconds")
    record = {"saved_at": saved_at, "by": by, "changes": changes, "written_sha256": written_sha256}
    write_json_atomic(folder / f"{name}.json", record)
    for old in list_backups(config_path)[KEPT_BACKUPS:]:
        old.path.unlink(missing_ok=True)
        old.path.with_suffix(".json").unlink(missing_ok=True)
    return Backup(name, target, saved_at, by, changes, written_sha256)


def list_backups(config_path: Path) -> list[Backup]:
    """Kept backups, newest first."""
    folder = backup_dir(config_path)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.toml"), reverse=True):
        try:
            record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        found.append(
            Backup(
                path.stem,
                path,
                str(record.get("saved_at", path.stem)),
                str(record.get("by", "unknown")),
                [str(c) for c in record.get("changes", [])],
                str(record.get("written_sha256", "")),
            )
        )
    return found


def find_backup(config_path: Path, name: str) -> Backup | None:
    return next((b for b in list_backups(config_path) if b.name == name), None)


def who_changed(config_path: Path, current_sha256: str) -> str:
    """'by NAME at TIME' when the last console save wrote the current file, else its mtime."""
    for backup in list_backups(config_path)[:1]:
        if backup.written_sha256 == current_sha256:
            return f"by {backup.by} at {backup.saved_at}"
    mtime = dt.datetime.fromtimestamp(Path(config_path).stat().st_mtime, dt.UTC)
    return f"outside the set-up page at {mtime.isoformat(timespec='seconds')}"
