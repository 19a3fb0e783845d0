"""Recalibration from the line end to end: a real bundle, a real journal, the real gate, and the
version it makes installed, refused and rolled back like any other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from retrain_station import build_station, cli, copy_station

from edge_agent.contracts.bundle import active_dir, read_manifest, sha256_file
from edge_agent.contracts.verdict import new_result_id
from edge_agent.feedback import lifecycle
from edge_agent.store.journal import Journal
from trainer.settings import load_config

pytestmark = pytest.mark.slow

CONNECTOR = "J1"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated station with a first J1 model (built once for this module)."""
    return build_station(tmp_path_factory.mktemp("built") / "station", (CONNECTOR,))


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Path:
    return copy_station(built, tmp_path / "site")


def journal_line(site: Path, scores: np.ndarray, truth: np.ndarray, version: str) -> None:
    """Boards scored by `version` at the line, in the journal as the agent writes them, and the
    operators' confirmations of every NOK and borderline OK (score >= 0.8)."""
    journal = Journal(load_config(site).paths.state / "journal.sqlite")
    journal.start_session()
    try:
        for score, label in zip(scores, truth, strict=True):
            evaluation = "NOK" if score >= 1.0 else "OK"
            result_id = new_result_id()
            row = {"id": CONNECTOR, "evaluation": evaluation, "score": float(score),
                   "threshold": 1.0, "model": {"version": version, "sha256": "x"}}  # fmt: skip
            verdict = {"result_id": result_id, "evaluation": evaluation, "connectors": [row]}
            journal.record_inspection(verdict, [], "t/verdict")
            if score >= 0.8:
                journal.record_confirmation(result_id, CONNECTOR, str(label), "quality")
    finally:
        journal.close()


def line_scores(rng: np.random.Generator, n_ok: int, ok_top: float) -> tuple[np.ndarray, ...]:
    """OK scores whose 99.5 % point is near `ok_top` of the threshold, and 3 % KO."""
    ok = rng.gamma(9.0, ok_top / 9.0 / 1.75, n_ok)
    ko = rng.uniform(0.3, 3.0, n_ok * 3 // 100)
    return np.concatenate([ok, ko]), np.array(["OK"] * len(ok) + ["KO"] * len(ko))


def test_a_threshold_only_version_is_gated_installed_and_rolled_back(site: Path) -> None:
    config = load_config(site)
    models = config.paths.models
    first = active_dir(models, CONNECTOR)
    assert first is not None
    scores, truth = line_scores(np.random.default_rng(0), 1500, 0.7)
    journal_line(site, scores, truth, first.name)

    proposed = cli("recalibrate", "--config", str(site), "--dry-run", port=1)
    assert proposed.returncode == 0, proposed.stderr
    assert f"{CONNECTOR}: proposed" in proposed.stdout
    assert active_dir(models, CONNECTOR) == first  # a dry run installs nothing
    proposal = json.loads((config.paths.state / "retrain" / CONNECTOR / "recalibration.json")
                          .read_text())  # fmt: skip
    assert proposal["outcome"] == "proposed" and proposal["n_confirmed"] > 0
    assert proposal["proposed_threshold"] < proposal["current_threshold"]

    done = cli("recalibrate", "--config", str(site), port=1)
    assert done.returncode == 0, done.stderr
    assert f"{CONNECTOR}: installed" in done.stdout
    now = active_dir(models, CONNECTOR)
    assert now is not None and now != first
    new, old = read_manifest(now), read_manifest(first)
    assert new.calibration.mode == "line"
    assert new.calibration.raw_threshold == pytest.approx(proposal["proposed_threshold"])
    assert new.onnx_sha256 == old.onnx_sha256 == sha256_file(now / "model.onnx")
    assert (new.input, new.model_input_size, new.roi_mask_id) == (
        old.input, old.model_input_size, old.roi_mask_id
    )  # fmt: skip
    assert "from the line: " in new.calibration.guarantee
    event = lifecycle.read_history(models, CONNECTOR)["events"][-1]
    assert (event["event"], event["version"], event["recalibrated_from"]) == (
        "installed", now.name, first.name
    )  # fmt: skip

    rolled = cli("models", "rollback", CONNECTOR, "--config", str(site), port=1)
    assert rolled.returncode == 0, rolled.stderr
    assert active_dir(models, CONNECTOR) == first


def test_the_gate_refuses_a_line_threshold_that_misses_library_ko(site: Path) -> None:
    config = load_config(site)
    first = active_dir(config.paths.models, CONNECTOR)
    assert first is not None
    # Scores far above the model's own scale (a line reporting nonsense): the threshold it
    # gives would let the library's KO through.
    scores, truth = line_scores(np.random.default_rng(1), 800, 40.0)
    journal_line(site, scores, truth, first.name)

    done = cli("recalibrate", "--config", str(site), port=1)

    assert done.returncode == 0, done.stderr
    assert f"{CONNECTOR}: refused" in done.stdout and "misses" in done.stdout
    assert active_dir(config.paths.models, CONNECTOR) == first
    refused = list((config.paths.models / CONNECTOR / "rejected").iterdir())
    assert len(refused) == 1 and read_manifest(refused[0]).calibration.mode == "line"


def test_too_few_scores_or_another_version_change_nothing(site: Path) -> None:
    config = load_config(site)
    first = active_dir(config.paths.models, CONNECTOR)
    assert first is not None
    scores, truth = line_scores(np.random.default_rng(2), 60, 0.7)
    journal_line(site, scores, truth, first.name)
    scores, truth = line_scores(np.random.default_rng(3), 1000, 0.7)
    journal_line(site, scores, truth, "2020-01-01.1")  # scored by a version no longer active

    done = cli("recalibrate", "--config", str(site), port=1)

    assert done.returncode == 0, done.stderr
    assert f"{CONNECTOR}: unchanged" in done.stdout and "too few scores" in done.stdout
    assert active_dir(config.paths.models, CONNECTOR) == first
