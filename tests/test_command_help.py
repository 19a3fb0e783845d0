"""What a new user reads: the demo's verdict columns named, the schedule's time zone said."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.commands.demo import VERDICT_HEADER, _print_verdict
from trainer.harness.station_run import Board
from trainer.settings import RetrainSettings

ROOT = Path(__file__).resolve().parents[1]


def verdict_line(capsys: pytest.CaptureFixture[str], found: list[str], truth: list[str]) -> str:
    rows = [{"id": cid, "evaluation": "NOK" if cid in found else "OK"} for cid in ("J1", "J3")]
    verdict = {"part_id": "b0300", "evaluation": "NOK" if found else "OK", "connectors": rows,
               "processing_ms": {"total": 38}}  # fmt: skip
    labels = {cid: "KO" if cid in truth else "OK" for cid in ("J1", "J3")}
    _print_verdict(verdict, Board(Path("b0300.png"), "test", labels, {}))
    return capsys.readouterr().out.rstrip("\n")


@pytest.mark.parametrize(("found", "truth"), [([], []), (["J1", "J3"], ["J1", "J3"]), ([], ["J3"])])
def test_the_demo_header_names_each_column_of_the_verdict_lines(
    capsys: pytest.CaptureFixture[str], found: list[str], truth: list[str]
) -> None:
    line = verdict_line(capsys, found, truth)

    mark = "ok " if found == truth else "MISMATCH"
    assert line.index("b0300") + len("b0300") == VERDICT_HEADER.index("part") + len("part")
    for column, value in [("verdict", "OK" if not found else "NOK"), ("agent found", "NOK "),
                          ("generator truth", "truth KO "), ("agree", mark)]:  # fmt: skip
        assert line[VERDICT_HEADER.index(column) :].startswith(value), (column, line)
    assert line.endswith("(38 ms)") and VERDICT_HEADER.endswith("(agent time)")


def test_the_retrain_schedule_is_said_to_be_local_time() -> None:
    template = (ROOT / "config.toml").read_text(encoding="utf-8")
    schedule = template[template.index('schedule = "0 2 * * *"') :].split("\n[", 1)[0]

    assert "local time" in schedule.split("misfire_grace_s")[0]
    assert "local time" in (RetrainSettings.model_fields["schedule"].description or "")
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "trainer", "--help"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "local time" in " ".join(result.stdout.split())
    assert "local time" in subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "--help"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_compare_help_lists_every_method_it_takes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "compare", "--help"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True,
    )  # fmt: skip

    text = " ".join(result.stdout.split())
    assert "patchcore, padim, autoencoder, efficientad-s, efficientad-m" in text
