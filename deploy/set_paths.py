"""Write a line PC's state and models folders into its installed station config.

usage: python set_paths.py CONFIG STATE MODELS

`deploy/install.sh` runs it on /etc/edge-inspect/config.toml, so that the one file is the
source of the paths for the agent, trainer and console services and for a shell alike
(`edge-inspect confirm|models|retrain --config /etc/edge-inspect/config.toml`). The rest of
the file, comments included, is kept; the file is replaced atomically with its owner and mode.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import tomlkit


def set_paths(config: Path, wanted: dict[str, str]) -> list[str]:
    """Set `[paths]` keys to `wanted`; returns the keys that changed (none: file untouched)."""
    document = tomlkit.parse(config.read_text(encoding="utf-8"))
    if "paths" not in document:
        document["paths"] = tomlkit.table()
    paths = document["paths"]
    changed = [key for key, value in wanted.items() if paths.get(key) != value]
    if not changed:
        return []
    for key in changed:
        paths[key] = wanted[key]
    handle, temporary = tempfile.mkstemp(prefix=f".{config.name}.", dir=config.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(tomlkit.dumps(document))
        out.flush()
        os.fsync(out.fileno())
    shutil.copymode(config, temporary)
    status = config.stat()
    os.chown(temporary, status.st_uid, status.st_gid)
    os.replace(temporary, config)
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    config, state, models = argv
    for key in set_paths(Path(config), {"state": state, "models": models}):
        print(f"==> {config}: paths.{key} = {state if key == 'state' else models}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
