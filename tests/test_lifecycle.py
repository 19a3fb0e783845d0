"""A connector's model lifecycle on disk: candidate, promote, rollback, refuse, prune."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from onnx_fixtures import install_bundle, make_manifest

from edge_agent.contracts.bundle import BundleError, list_versions, next_version
from edge_agent.feedback import lifecycle
from edge_agent.feedback.lifecycle import LifecycleError

CID = "J1"


def add(models: Path, version: str, active: bool = False) -> None:
    """A bundle whose model file is only bytes: the lifecycle checks integrity, not the graph."""
    manifest = make_manifest(CID, version, 24, 32, 16, 10.0)
    install_bundle(models, manifest, f"graph {version}".encode(), make_active=active)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    add(root, "2026-09-01.1", active=True)
    return root


def test_candidate_is_promoted_and_rollback_restores_the_one_before(models: Path) -> None:
    add(models, "2026-09-02.1")
    lifecycle.set_candidate(models, CID, "2026-09-02.1", "trainer")
    assert lifecycle.state(models, CID).candidate == "2026-09-02.1"

    event = lifecycle.promote(models, CID, by="anna")
    promoted = lifecycle.state(models, CID)
    back = lifecycle.rollback(models, CID, by="anna")

    assert (event["event"], event["previous"], event["by"]) == ("promoted", "2026-09-01.1", "anna")
    assert (promoted.active, promoted.candidate, promoted.rollback_to) == (
        "2026-09-02.1",
        None,
        "2026-09-01.1",
    )
    assert (back["version"], back["replaced"]) == ("2026-09-01.1", "2026-09-02.1")
    assert lifecycle.state(models, CID).active == "2026-09-01.1"
    assert lifecycle.state(models, CID).last_event["event"] == "rolled_back"


def test_rollbacks_walk_back_through_what_was_active(models: Path) -> None:
    for day in (2, 3):
        add(models, f"2026-09-0{day}.1")
        lifecycle.install(models, CID, f"2026-09-0{day}.1", "trainer")
    add(models, "2026-09-04.1")
    lifecycle.set_candidate(models, CID, "2026-09-04.1", "trainer")  # shadowed, never active

    path = [lifecycle.rollback(models, CID)["version"] for _ in range(2)]

    assert path == ["2026-09-02.1", "2026-09-01.1"]
    with pytest.raises(LifecycleError, match="no earlier version"):
        lifecycle.rollback(models, CID)


def test_rollback_without_history_picks_the_newest_older_version(models: Path) -> None:
    add(models, "2026-09-02.1", active=True)  # activated by `edge-inspect train`, no history

    assert lifecycle.state(models, CID).rollback_to == "2026-09-01.1"
    assert lifecycle.rollback(models, CID)["version"] == "2026-09-01.1"


def test_promote_refuses_what_it_cannot_do(models: Path) -> None:
    with pytest.raises(LifecycleError, match="no candidate"):
        lifecycle.promote(models, CID)
    with pytest.raises(LifecycleError, match="not installed"):
        lifecycle.promote(models, CID, "2026-12-31.9")
    with pytest.raises(LifecycleError, match="already active"):
        lifecycle.promote(models, CID, "2026-09-01.1")
    add(models, "2026-09-02.1")
    lifecycle.set_candidate(models, CID, "2026-09-02.1", "trainer")
    with pytest.raises(LifecycleError, match=r"candidate is 2026-09-02\.1 now"):
        lifecycle.promote(models, CID, expect_candidate="2026-09-01.7")
    with pytest.raises(LifecycleError, match="version '' is not installed"):
        lifecycle.promote(models, CID, "")  # an empty name is not "the candidate"
    (models / CID / "2026-09-02.1" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="does not match"):
        lifecycle.promote(models, CID)
    assert lifecycle.state(models, CID).active == "2026-09-01.1"


def test_refused_bundle_goes_aside_with_its_reason_and_keeps_its_number(
    models: Path, tmp_path: Path
) -> None:
    staged = tmp_path / "staged" / "2026-09-02.1"
    add(tmp_path / "staged-root", "2026-09-02.1")
    staged.parent.mkdir()
    (tmp_path / "staged-root" / CID / "2026-09-02.1").rename(staged)

    target = lifecycle.refuse(
        models,
        CID,
        staged,
        "2026-09-02.1",
        "trainer",
        {"accepted": False, "summary": "misses 1 of 2 KO"},
    )

    assert target == models / CID / "rejected" / "2026-09-02.1"
    reason = json.loads((target / lifecycle.REASON_FILE).read_text())
    assert reason["summary"] == "misses 1 of 2 KO" and reason["version"] == "2026-09-02.1"
    current = lifecycle.state(models, CID)
    assert (current.active, current.rejected) == ("2026-09-01.1", ["2026-09-02.1"])
    assert current.last_event["event"] == "refused"
    assert list_versions(models, CID) == ["2026-09-01.1"]
    assert next_version(models, CID, today=dt.date(2026, 9, 2)) == "2026-09-02.2"


def test_pruning_keeps_the_active_the_candidate_and_the_newest(models: Path) -> None:
    for day in range(2, 8):
        add(models, f"2026-09-0{day}.1")
    lifecycle.install(models, CID, "2026-09-03.1", "trainer")
    lifecycle.set_candidate(models, CID, "2026-09-02.1", "trainer")

    removed = lifecycle.prune_versions(models, CID, keep=2)

    assert list_versions(models, CID) == [
        "2026-09-01.1",
        "2026-09-02.1",
        "2026-09-03.1",
        "2026-09-06.1",
        "2026-09-07.1",
    ]
    assert sorted(removed) == ["2026-09-04.1", "2026-09-05.1"]


def test_model_announcement_info_names_candidate_rollback_and_last_event(models: Path) -> None:
    add(models, "2026-09-02.1")
    lifecycle.install(models, CID, "2026-09-02.1", "trainer")
    add(models, "2026-09-03.1")
    lifecycle.set_candidate(models, CID, "2026-09-03.1", "trainer")

    info = lifecycle.lifecycle_info(models, CID)

    assert (info["candidate"], info["rollback_to"]) == ("2026-09-03.1", "2026-09-01.1")
    assert info["last_event"]["event"] == "candidate" and info["last_event"]["by"] == "trainer"


def test_a_version_that_does_not_fit_is_never_offered_for_rollback_nor_promoted(
    models: Path,
) -> None:
    # Copied in by hand: another connector's bundle and one made for another crop size, both
    # older than a fitting version activated without history (as `edge-inspect train` does).
    other = install_bundle(
        models, make_manifest("J2", "2026-09-02.1", 24, 32, 16, 10.0), b"J2", make_active=False
    )
    other.rename(models / CID / "2026-09-02.1")
    install_bundle(
        models, make_manifest(CID, "2026-09-03.1", 30, 50, 16, 10.0), b"wide", make_active=False
    )
    add(models, "2026-09-04.1", active=True)
    crop = (24, 32)  # (height, width) of the crop J1's box cuts

    assert lifecycle.state(models, CID, crop).rollback_to == "2026-09-01.1"
    assert lifecycle.lifecycle_info(models, CID, crop)["rollback_to"] == "2026-09-01.1"
    assert lifecycle.rollback(models, CID, "anna", crop)["version"] == "2026-09-01.1"
    with pytest.raises(LifecycleError, match="connector 'J2'"):
        lifecycle.promote(models, CID, "2026-09-02.1", crop_size=crop)
    with pytest.raises(LifecycleError, match="50x30"):
        lifecycle.promote(models, CID, "2026-09-03.1", crop_size=crop)
    assert lifecycle.state(models, CID).active == "2026-09-01.1"
