"""A drop-folder file that cannot be read: retried, then given up with an error, never waited on
for ever, and it never holds back the files behind it.

The watcher runs in a child process without the capabilities that let root read a file whatever
its mode (`setpriv`), on a real folder, so the refusal is the kernel's own EACCES.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WATCH = """
import json, sys, time
from pathlib import Path
from edge_agent.inputs.drop_folder import DropFolderWatcher
handed = []
watcher = DropFolderWatcher("cam1", Path(sys.argv[1]), handed.append, settle_s=0.05,
                            give_up_after_s=float(sys.argv[2]))
watcher.start()
deadline = time.monotonic() + 30
while len(handed) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
watcher.stop()
print(json.dumps([[d.path.name, d.error, len(d.data), d.sha256] for d in handed]))
"""
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("root without setpriv (util-linux) reads a file whatever its mode")
    cam = tmp_path / "cam1"
    cam.mkdir()
    return cam


def test_an_unreadable_file_is_given_up_with_an_error_and_the_next_file_goes_first(
    folder: Path,
) -> None:
    locked = folder / "locked.png"
    locked.write_bytes(b"held by another user")
    locked.chmod(0)  # nobody may read it, and the watcher may not override that
    (folder / "next.png").write_bytes(b"next board")

    child = subprocess.run(
        [
            *(NO_OVERRIDE if os.geteuid() == 0 else []),
            sys.executable,
            "-c",
            WATCH,
            str(folder),
            "0.5",
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    handed = json.loads(child.stdout.splitlines()[-1])

    assert [name for name, *_ in handed] == ["next.png", "locked.png"]
    _, error, size, sha = handed[1]
    assert error.startswith("could not be read for ") and "Permission denied" in error
    assert size == 0 and sha == ""  # no data, no hash: nothing was read
    assert "drop_unreadable_given_up" in child.stdout + child.stderr
