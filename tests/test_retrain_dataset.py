"""Retraining data: current set + confirmed OK, de-duplicated, bounded, KO and held-out kept out."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.contracts.verdict import new_result_id
from edge_agent.inspect.imaging import encode_png
from edge_agent.store.crop_store import JOURNAL_FILE, CropStore
from edge_agent.store.journal import Journal
from trainer.datasets import in_holdout
from trainer.retrain.dataset import SET_FILE, Assembler, Assembly, materialise, pixel_name

SIZE = (24, 32)
CID = "J1"


def crop(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def write(folder: Path, seeds: range) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"s{seed:04d}.png").write_bytes(encode_png(crop(seed)))
    return [pixel_name(crop(seed)) for seed in seeds]


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """A seed data set: 40 train OK, 10 val OK, 2 val KO."""
    root = tmp_path / "seed" / CID
    write(root / "train" / "ok", range(0, 40))
    write(root / "val" / "ok", range(100, 110))
    write(root / "val" / "ko", range(200, 202))
    return root


class Mes:
    """Boards journaled and kept as the agent does, then confirmed."""

    def __init__(self, state: Path) -> None:
        self.journal = Journal(state / JOURNAL_FILE)
        self.journal.start_session()
        self.store = CropStore(state)

    def confirm(self, image: np.ndarray, label: str) -> str:
        result_id = new_result_id()
        verdict = {
            "result_id": result_id,
            "evaluation": "OK",
            "connectors": [{"id": CID, "evaluation": "OK", "score": 0.1}],
        }
        self.journal.record_inspection(verdict, [], "p/verdict")
        self.store.keep(verdict, {CID: image})
        self.journal.record_confirmation(result_id, CID, label, "mes")
        return result_id


@pytest.fixture
def mes(tmp_path: Path) -> Mes:
    mes = Mes(tmp_path / "state")
    yield mes
    mes.store.close()
    mes.journal.close()


def assembler(tmp_path: Path, max_train: int = 400) -> Assembler:
    return Assembler(
        CID,
        SIZE,
        tmp_path / "library",
        max_train=max_train,
        new_share=0.5,
        max_holdout=400,
        gate_share=0.5,
        holdout_fraction=0.2,
    )


def names(assembly: Assembly, role: str) -> set[str]:
    return {c.name for c in getattr(assembly, role)}


def install_record(tmp_path: Path, assembly: Assembly) -> Path:
    """What a retrain leaves behind: the library and a bundle folder with the training set."""
    materialise(assembly, tmp_path / "library", tmp_path / "work")
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / SET_FILE).write_text(json.dumps(assembly.record()))
    return bundle


def test_first_retrain_starts_from_the_seed_split(tmp_path: Path, seed: Path, mes: Mes) -> None:
    mes.confirm(crop(500), "OK")

    assembly = assembler(tmp_path).assemble(seed, mes.store, None)

    held = names(assembly, "calibration_ok") | names(assembly, "gate_ok")
    assert {pixel_name(crop(s)) for s in range(0, 40)} <= names(assembly, "train")
    assert {pixel_name(crop(s)) for s in range(100, 110)} <= held
    assert names(assembly, "ko") == {pixel_name(crop(s)) for s in (200, 201)}
    assert assembly.calibration_ok and assembly.gate_ok and not assembly.unchanged
    assert assembly.counts["confirmed_ok"] == 1


def test_duplicates_collapse_and_confirmed_ko_never_trains(
    tmp_path: Path, seed: Path, mes: Mes
) -> None:
    mes.confirm(crop(300), "OK")
    mes.confirm(crop(300), "OK")
    mes.confirm(crop(5), "OK")  # already in the seed's train/ok
    mes.confirm(crop(301), "OK")
    mes.confirm(crop(301), "KO")  # the same content once OK, once KO: never trained on
    mes.confirm(crop(7), "KO")  # a seed training crop found KO after all

    assembly = assembler(tmp_path).assemble(seed, mes.store, None)

    everything = [
        c.name
        for role in ("train", "calibration_ok", "gate_ok", "ko")
        for c in getattr(assembly, role)
    ]
    assert len(everything) == len(set(everything))
    ok_sets = (
        names(assembly, "train") | names(assembly, "calibration_ok") | names(assembly, "gate_ok")
    )
    assert pixel_name(crop(300)) in ok_sets and pixel_name(crop(5)) in names(assembly, "train")
    for ko in (301, 7):
        assert pixel_name(crop(ko)) in names(assembly, "ko")
        assert pixel_name(crop(ko)) not in ok_sets


def test_training_set_is_bounded_and_keeps_old_and_new(
    tmp_path: Path, seed: Path, mes: Mes
) -> None:
    fresh = [s for s in range(1000, 1200) if not in_holdout(Path(pixel_name(crop(s))), 0.2)][:60]
    for s in fresh:
        mes.confirm(crop(s), "OK")

    first = assembler(tmp_path, max_train=30).assemble(seed, mes.store, None)
    again = assembler(tmp_path, max_train=30).assemble(seed, mes.store, None)

    train = names(first, "train")
    new = {pixel_name(crop(s)) for s in fresh}
    assert len(train) == 30
    assert len(train & new) == 15 and first.counts["train_new"] == 15
    assert first.counts["train_dropped"] == 40 + 60 - 30
    assert train == names(again, "train")


def test_held_out_crops_keep_their_role_and_a_run_without_news_is_unchanged(
    tmp_path: Path, seed: Path, mes: Mes
) -> None:
    for s in range(400, 430):
        mes.confirm(crop(s), "OK")
    first = assembler(tmp_path).assemble(seed, mes.store, None)
    bundle = install_record(tmp_path, first)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    mes.store.prune(max_age_days=1, max_bytes=10**9, now=later)  # retention took them all

    second = assembler(tmp_path).assemble(seed, mes.store, bundle)
    mes.confirm(crop(999), "OK")
    third = assembler(tmp_path).assemble(seed, mes.store, bundle)

    for role in ("train", "calibration_ok", "gate_ok", "ko"):
        assert names(second, role) == names(first, role)
    held = {
        pixel_name(crop(s)) for s in range(400, 430) if in_holdout(Path(pixel_name(crop(s))), 0.2)
    }
    assert held and held <= names(first, "calibration_ok") | names(first, "gate_ok")
    assert second.unchanged and not third.unchanged


def test_unreadable_and_wrong_size_crops_are_skipped_and_reported(
    tmp_path: Path, seed: Path, mes: Mes
) -> None:
    broken = mes.confirm(crop(600), "OK")
    mes.confirm(crop(601, size=(30, 30)), "OK")
    path = mes.store.kept(broken)[0].path
    path.write_bytes(path.read_bytes()[:100])
    (seed / "train" / "ok" / "junk.png").write_bytes(b"not an image")

    assembly = assembler(tmp_path).assemble(seed, mes.store, None)

    reasons = {s["origin"]: s["reason"] for s in assembly.skipped}
    assert "unreadable" in reasons[f"confirmed/{broken}"]
    assert "unreadable" in reasons["seed/train/ok/junk.png"]
    assert any("30x30" in r and "32x24" in r for r in reasons.values())
    assert assembly.counts["skipped"] == 3 and assembly.counts["confirmed_ok"] == 0


def test_work_folder_has_the_station_layout(tmp_path: Path, seed: Path, mes: Mes) -> None:
    assembly = assembler(tmp_path).assemble(seed, mes.store, None)

    work = materialise(assembly, tmp_path / "library", tmp_path / "work")

    def listed(sub: str) -> set[str]:
        return {p.name for p in (work / sub).iterdir()}

    assert listed("train/ok") == names(assembly, "train")
    assert listed("val/ok") == names(assembly, "calibration_ok")
    assert listed("val/ko") == names(assembly, "ko")
    assert listed("test/ok") == names(assembly, "gate_ok")
    assert {p.name for p in (tmp_path / "library").iterdir()} == (
        names(assembly, "train")
        | names(assembly, "calibration_ok")
        | names(assembly, "gate_ok")
        | names(assembly, "ko")
    )
