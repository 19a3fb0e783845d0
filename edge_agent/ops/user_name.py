"""Who runs a command: the name recorded as `cli:<name>` when nobody gives `--by`."""

from __future__ import annotations

import getpass
import os


def current_user() -> str:
    """The login name ($LOGNAME, $USER, the passwd entry), else `uid-<n>`: a container or a
    systemd `DynamicUser` may have no passwd entry, where `getpass.getuser()` raises."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"
