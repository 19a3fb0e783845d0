"""Kept crops: written beside the journal, labelled by confirmations, pruned by age and disk."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from small_disk import fill, free_bytes, small_tmpfs

from edge_agent.inspect.imaging import read_image_file
from edge_agent.store.crop_store import JOURNAL_FILE, CropStore
from edge_agent.store.journal import Journal

NOW = dt.datetime(2026, 9, 30, 12, 0, tzinfo=dt.UTC)


def crop(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)


@pytest.fixture
def store(tmp_path: Path, journal: Journal) -> CropStore:
    store = CropStore(tmp_path)
    yield store
    store.close()


def board(journal: Journal, store: CropStore, result_id: str, days_old: float, seed: int) -> None:
    """One journaled board of J1 and J2 with its crops kept."""
    created = (NOW - dt.timedelta(days=days_old)).isoformat(timespec="milliseconds")
    verdict = {
        "result_id": result_id,
        "evaluation": "NOK",
        "created_at": created.replace("+00:00", "Z"),
        "connectors": [
            {"id": "J1", "evaluation": "OK", "score": 0.2, "model": {"version": "2026-09-01.1"}},
            {"id": "J2", "evaluation": "NOK", "score": 3.1, "model": {"version": "2026-09-02.1"}},
        ],
    }
    journal.record_inspection(verdict, [], "p/verdict")
    assert store.keep(verdict, {"J1": crop(seed), "J2": crop(seed + 1000)}) == 2


def test_kept_crops_are_pngs_with_score_verdict_and_model(
    tmp_path: Path, journal: Journal, store: CropStore
) -> None:
    board(journal, store, "R1", days_old=0, seed=1)

    kept = store.kept("R1")

    assert [(k.connector, k.score, k.evaluation, k.model_version) for k in kept] == [
        ("J1", 0.2, "OK", "2026-09-01.1"),
        ("J2", 3.1, "NOK", "2026-09-02.1"),
    ]
    assert kept[0].path == tmp_path / "crops" / "J1" / "2026-09-30" / "R1.png"
    assert np.array_equal(read_image_file(kept[0].path), crop(1))
    assert store.total_bytes() == sum(k.path.stat().st_size for k in kept)


def test_latest_confirmation_labels_a_crop(journal: Journal, store: CropStore) -> None:
    board(journal, store, "R1", days_old=0, seed=1)
    board(journal, store, "R2", days_old=0, seed=2)
    journal.record_confirmation("R1", "J2", "OK", "mes")
    journal.record_confirmation("R1", "J2", "KO", "anna")
    journal.record_confirmation("R2", "J1", "OK", "mes")

    labelled = {(x.crop.result_id, x.crop.connector): (x.label, x.by) for x in store.labelled("J2")}

    assert labelled == {("R1", "J2"): ("KO", "anna")}
    assert [x.crop.result_id for x in store.labelled("J1")] == ["R2"]


def test_crops_past_the_age_limit_are_removed_with_their_files(
    tmp_path: Path, journal: Journal, store: CropStore
) -> None:
    board(journal, store, "OLD", days_old=40, seed=1)
    board(journal, store, "NEW", days_old=1, seed=2)
    old_files = [k.path for k in store.kept("OLD")]

    result = store.prune(max_age_days=30, max_bytes=10**9, now=NOW)

    assert (result.removed, result.more) == (2, False)
    assert store.kept("OLD") == [] and len(store.kept("NEW")) == 2
    assert not any(p.exists() for p in old_files)
    assert not (tmp_path / "crops" / "J1" / old_files[0].parent.name).exists()


def test_over_the_disk_budget_unconfirmed_crops_go_first_oldest_first(
    journal: Journal, store: CropStore
) -> None:
    for index, days in enumerate((5, 4, 3, 2)):
        board(journal, store, f"R{index}", days_old=days, seed=index)
    journal.record_confirmation("R0", "J1", "OK", "mes")
    journal.record_confirmation("R0", "J2", "KO", "mes")
    per_board = store.total_bytes() // 4

    store.prune(max_age_days=30, max_bytes=2 * per_board + 10, now=NOW)

    left = [k.result_id for rid in ("R0", "R1", "R2", "R3") for k in store.kept(rid)]
    assert left == ["R0", "R0", "R3", "R3"]


def test_pruning_is_bounded_per_pass_and_says_when_more_is_due(
    journal: Journal, store: CropStore
) -> None:
    for index in range(3):
        board(journal, store, f"R{index}", days_old=60, seed=index)

    first = store.prune(max_age_days=30, max_bytes=10**9, now=NOW, limit=4)
    second = store.prune(max_age_days=30, max_bytes=10**9, now=NOW, limit=4)

    assert (first.removed, first.more) == (4, True)
    assert (second.removed, second.more) == (2, False)
    assert store.count() == 0


def test_crops_give_way_below_the_free_space_floor_unconfirmed_first(tmp_path: Path) -> None:
    floor = 1_000_000
    with small_tmpfs(tmp_path / "state", 4_000_000) as state:
        journal = Journal(state / JOURNAL_FILE)
        journal.start_session()
        store = CropStore(state, min_free_bytes=floor)  # a store opened after a restart
        try:
            for index in range(3):
                verdict = {
                    "result_id": f"R{index}",
                    "evaluation": "OK",
                    "created_at": f"2026-09-30T11:00:0{index}.000Z",
                    "connectors": [{"id": "J1"}, {"id": "J2"}],
                }
                journal.record_inspection(verdict, [], "p/verdict")
                assert store.keep(verdict, {"J1": big_crop(index), "J2": big_crop(index + 9)}) == 2
            journal.record_confirmation("R0", "J1", "OK", "mes")
            journal.record_confirmation("R0", "J2", "KO", "mes")
            per_crop = store.total_bytes() // 6
            fill(state / "filler", leave_bytes=floor - int(2.5 * per_crop))

            skipped = store.keep({"result_id": "R9", "evaluation": "OK"}, {"J1": big_crop(9)})
            pruned = store.prune(max_age_days=30, max_bytes=10**9, now=NOW)

            assert skipped == 0 and not list(store.root.rglob("R9.png"))
            assert (pruned.removed, pruned.more) == (3, False)
            assert free_bytes(state) >= floor
            assert len(store.kept("R0")) == 2  # confirmed: kept while unconfirmed crops remain
            assert (len(store.kept("R1")), len(store.kept("R2"))) == (0, 1)  # oldest first
        finally:
            store.close()
            journal.close()


def big_crop(seed: int) -> np.ndarray:
    """A crop of random pixels: its PNG is about 120 kB (noise does not compress)."""
    return np.random.default_rng(seed).integers(0, 256, (200, 200, 3), dtype=np.uint8)
