"""The console runs on the line PC's agent install: it must not need torch or the trainer."""

from __future__ import annotations

import subprocess
import sys

from console_station import ROOT


def test_the_console_application_loads_without_torch_or_the_trainer():
    probe = (
        "import sys; from edge_agent.commands import console; from edge_agent.console import app;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trainer')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"
