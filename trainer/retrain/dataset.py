"""One connector's retraining data, assembled from what the active model learned and new labels.

Sources: the active model's recorded training set (or, before the first retrain, the seed data
set's train/ok), the seed's held-out val/ok and val/ko, and the crops confirmed since.
Every crop is named by the sha256 of its pixels, so duplicates collapse and a crop keeps its
role for ever: held-out or not is decided by `trainer.datasets.in_holdout` on that name.

- training: the current set + newly confirmed OK, at most `max_train`, of which new crops get
  up to a `new_share`; the rest is a stable hash-ordered sample of the old ones (old conditions)
- held-out OK (never trained on): split by a second stable hash into calibration and gate
- KO library: seed val/ko + confirmed KO; it calibrates and gates, it never trains
- a crop whose latest confirmation is KO leaves every OK set (and OK leaves the KO library)

The trainer keeps its own copy of each crop in use (`library/<name>`), so crops the agent's
retention removes stay available to later retrains. A bundle trained by `train` or `train-all`
carries its sets itself (`training_set.json` + `training_crops/<name>`), so the first retrain
continues from exactly what it learned, wherever its crop folders went since.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.contracts.atomic import replacing
from edge_agent.inspect.imaging import DecodeError, decode_image, encode_png
from edge_agent.store.crop_store import CropStore
from trainer.datasets import CropSet, in_holdout, list_images
from trainer.retrain.runs import retrain_root
from trainer.settings import TrainerConfig

SET_FILE = "training_set.json"
SET_SCHEMA = "edge-inspect.training-set/1"
CROPS_DIR = "training_crops"
LIBRARY_DIR = "library"
ROLES = ("train", "calibration_ok", "gate_ok", "ko")
MAX_CROP_BYTES = 50_000_000
MAX_CROP_PIXELS = 10_000_000


@dataclass(frozen=True)
class Crop:
    """One usable crop: its content name, where its bytes are now, and where it came from."""

    name: str
    source: Path
    origin: str


@dataclass
class Assembly:
    """The data sets of one retraining run of one connector."""

    connector: str
    train: list[Crop]
    calibration_ok: list[Crop]
    gate_ok: list[Crop]
    ko: list[Crop]
    test_dir: Path | None
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    unchanged: bool = False

    def record(self) -> dict[str, Any]:
        """What `training_set.json` in the candidate bundle says: each role's crop names."""
        roles = {role: sorted(c.name for c in getattr(self, role)) for role in ROLES}
        origins = {c.name: c.origin for role in ROLES for c in getattr(self, role)}
        return {
            "schema": SET_SCHEMA,
            "connector": self.connector,
            **roles,
            "origins": dict(sorted(origins.items())),
            "counts": self.counts,
        }


@dataclass
class _Pool:
    """Crops found so far by content name, and the labels that current confirmations give."""

    crops: dict[str, Crop] = field(default_factory=dict)
    confirmed: dict[str, set[str]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)


def pixel_name(image: np.ndarray) -> str:
    """The content name of a crop: sha256 over its shape and pixels."""
    digest = hashlib.sha256(repr(image.shape).encode())
    digest.update(image.tobytes())
    return f"{digest.hexdigest()[:32]}.png"


def _stable_rank(name: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{name}".encode()).hexdigest()


def in_gate(name: str, share: float) -> bool:
    """Stable split of held-out OK: the gate part (the rest calibrates)."""
    return int(_stable_rank(name, "gate")[:8], 16) / 16**8 < share


def write_bundle_record(
    bundle: Path, connector: str, data_dir: Path, train: CropSet, held_ok: CropSet, ko: CropSet
) -> dict[str, Any]:
    """Record the sets a `train` / `train-all` bundle learned from, with a copy of each crop
    (lossless PNG named by its pixels) in `<bundle>/training_crops/`: held-out OK calibrates,
    KO calibrates; none is split off for the gate yet (a retrain splits held-out OK again)."""
    folder = Path(bundle) / CROPS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    roles: dict[str, list[str]] = {}
    origins: dict[str, str] = {}
    for role, crops in (("train", train), ("calibration_ok", held_ok), ("ko", ko)):
        names = []
        for path, image in zip(crops.paths, crops.images, strict=True):
            name = pixel_name(image)
            if name not in origins:
                (folder / name).write_bytes(encode_png(image))
                origins[name] = os.path.relpath(path, data_dir)
            names.append(name)
        roles[role] = sorted(set(names))
    record = {
        "schema": SET_SCHEMA,
        "connector": connector,
        "trained_by": "train",
        **{role: roles.get(role, []) for role in ROLES},
        "origins": dict(sorted(origins.items())),
        "counts": {role: len(roles.get(role, [])) for role in ROLES},
    }
    (Path(bundle) / SET_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def read_record(bundle_dir: Path | None) -> dict[str, Any] | None:
    """The training set recorded in a bundle, or None (bundles made before records existed)."""
    if bundle_dir is None or not (Path(bundle_dir) / SET_FILE).is_file():
        return None
    return json.loads((Path(bundle_dir) / SET_FILE).read_text(encoding="utf-8"))


def assembler_for(config: TrainerConfig, connector: str) -> Assembler:
    """The connector's assembler as the station's config sets it (box size, `[retrain]` shares),
    its library at `<state>/retrain/<connector>/library`."""
    settings = config.retrain
    _, _, width, height = config.connectors[connector].box
    return Assembler(
        connector,
        (height, width),
        retrain_root(config) / connector / LIBRARY_DIR,
        max_train=settings.max_train,
        new_share=settings.new_share,
        max_holdout=settings.max_holdout,
        gate_share=settings.gate_share,
        holdout_fraction=config.training.holdout_fraction,
    )


class Assembler:
    """Collects, checks and assigns one connector's crops; see the module docstring."""

    def __init__(
        self,
        connector: str,
        crop_size: tuple[int, int],
        library: Path,
        *,
        max_train: int,
        new_share: float,
        max_holdout: int,
        gate_share: float,
        holdout_fraction: float,
    ) -> None:
        self.connector = connector
        self.crop_size = crop_size
        self.library = Path(library)
        self.max_train = max_train
        self.new_share = new_share
        self.max_holdout = max_holdout
        self.gate_share = gate_share
        self.holdout_fraction = holdout_fraction
        self._pool = _Pool()

    def _add(self, path: Path, origin: str) -> Crop | None:
        """Decode and check one crop file; a bad one is skipped and reported, never fatal."""
        try:
            data = Path(path).read_bytes()
            image = decode_image(data, MAX_CROP_BYTES, MAX_CROP_PIXELS)
        except (OSError, DecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            self._pool.skipped.append({"origin": origin, "reason": f"unreadable: {reason}"})
            return None
        height, width = image.shape[:2]
        if (height, width) != self.crop_size:
            self._pool.skipped.append(
                {
                    "origin": origin,
                    "reason": f"crop is {width}x{height}, the connector's box is "
                    f"{self.crop_size[1]}x{self.crop_size[0]}",
                }
            )
            return None
        name = pixel_name(image)
        return self._pool.crops.setdefault(name, Crop(name, Path(path), origin))

    def _add_folder(self, folder: Path, origin: str) -> list[Crop]:
        found = (self._add(p, f"{origin}/{p.name}") for p in list_images(folder))
        return [c for c in found if c is not None]

    def _add_recorded(self, names: list[str], bundle: Path) -> list[Crop]:
        """Recorded crops from the library, else from the bundle's own copy."""
        found = []
        for name in names:
            kept = self.library / name
            if kept.is_file() or not (bundle / CROPS_DIR / name).is_file():
                found.append(self._add(kept, f"library/{name}"))
            else:
                found.append(self._add(bundle / CROPS_DIR / name, f"{CROPS_DIR}/{name}"))
        return [c for c in found if c is not None]

    def assemble(
        self, seed: Path | None, store: CropStore | None, active_bundle: Path | None
    ) -> Assembly:
        """The four sets for the next candidate, and whether they equal the active model's."""
        record = read_record(active_bundle)
        seed = Path(seed) if seed is not None and Path(seed).is_dir() else None
        if record is not None and active_bundle is not None:
            bundle = Path(active_bundle)
            old_train = self._add_recorded(record["train"], bundle)
            held = self._add_recorded(record["calibration_ok"] + record["gate_ok"], bundle)
            ko = self._add_recorded(record["ko"], bundle)
        else:
            old_train = self._add_folder(seed / "train" / "ok", "seed/train/ok") if seed else []
            held, ko = [], []
        if seed is not None:
            held += self._add_folder(seed / "val" / "ok", "seed/val/ok")
            ko += self._add_folder(seed / "val" / "ko", "seed/val/ko")
        confirmed_ok, confirmed_ko = self._confirmed(store)
        known_ok = {c.name for c in old_train + held}
        new_ok = [c for c in confirmed_ok if c.name not in known_ok]
        held += [c for c in new_ok if self._held_out(c.name)]
        ko += confirmed_ko
        confirmed = self._pool.confirmed
        ok_labels = {n for n, labels in confirmed.items() if labels == {"OK"}}
        ko = _unique(c for c in ko if c.name not in ok_labels)
        ko_names = {c.name for c in ko} | {n for n, labels in confirmed.items() if "KO" in labels}
        held = sorted(_unique(c for c in held if c.name not in ko_names), key=lambda c: c.name)
        held = held[: self.max_holdout]
        held_names = {c.name for c in held}
        excluded = ko_names | held_names
        old = _unique(c for c in old_train if c.name not in excluded)
        taken = excluded | {c.name for c in old}
        fresh = _unique(c for c in new_ok if c.name not in taken)
        train, dropped = self._sample(old, fresh)
        fresh_names = {c.name for c in fresh}
        calibration, gate = self._split(held)
        assembly = Assembly(
            connector=self.connector,
            train=train,
            calibration_ok=calibration,
            gate_ok=gate,
            ko=sorted(ko, key=lambda c: c.name),
            test_dir=seed / "test" if seed is not None and (seed / "test").is_dir() else None,
            skipped=self._pool.skipped,
        )
        assembly.counts = {
            "train": len(train),
            "train_new": len([c for c in train if c.name in fresh_names]),
            "train_dropped": dropped,
            "calibration_ok": len(calibration),
            "gate_ok": len(gate),
            "ko": len(ko),
            "confirmed_ok": len(confirmed_ok),
            "confirmed_ko": len(confirmed_ko),
            "skipped": len(self._pool.skipped),
        }
        if record is not None and record.get("trained_by") != "train":
            now = assembly.record()
            assembly.unchanged = all(now[role] == sorted(record[role]) for role in ROLES)
        else:
            assembly.unchanged = not (confirmed_ok or confirmed_ko)
        return assembly

    def _confirmed(self, store: CropStore | None) -> tuple[list[Crop], list[Crop]]:
        """Confirmed crops of the connector, by their latest label; KO wins among duplicates."""
        ok, ko = [], []
        for item in store.labelled(self.connector) if store is not None else []:
            crop = self._add(item.crop.path, f"confirmed/{item.crop.result_id}")
            if crop is None:
                continue
            self._pool.confirmed.setdefault(crop.name, set()).add(item.label)
            (ko if item.label == "KO" else ok).append(crop)
        ko_names = {n for n, labels in self._pool.confirmed.items() if "KO" in labels}
        return _unique(c for c in ok if c.name not in ko_names), _unique(ko)

    def _held_out(self, name: str) -> bool:
        return in_holdout(Path(name), self.holdout_fraction)

    def _sample(self, old: list[Crop], fresh: list[Crop]) -> tuple[list[Crop], int]:
        """At most max_train: new crops up to their share (or the room left), then old ones."""
        room_for_new = max(math.ceil(self.new_share * self.max_train), self.max_train - len(old))
        by_rank = sorted(fresh, key=lambda c: _stable_rank(c.name, "train"))
        taken_new = by_rank[:room_for_new]
        old_ranked = sorted(old, key=lambda c: _stable_rank(c.name, "train"))
        taken_old = old_ranked[: self.max_train - len(taken_new)]
        chosen = sorted(taken_old + taken_new, key=lambda c: c.name)
        return chosen, len(old) + len(fresh) - len(chosen)

    def _split(self, held: list[Crop]) -> tuple[list[Crop], list[Crop]]:
        """Calibration and gate parts of held-out OK; neither is left empty when there are two,
        and calibration gets the 2 crops a threshold needs when there are three."""
        gate = [c for c in held if in_gate(c.name, self.gate_share)]
        calibration = [c for c in held if not in_gate(c.name, self.gate_share)]
        if len(held) >= 2 and not (gate and calibration):
            calibration, gate = held[: len(held) // 2], held[len(held) // 2 :]
        if len(held) >= 3 and len(calibration) < 2:
            moved = gate[: 2 - len(calibration)]
            calibration = sorted(calibration + moved, key=lambda c: c.name)
            gate = gate[len(moved) :]
        return calibration, gate


def _unique(crops) -> list[Crop]:
    seen: dict[str, Crop] = {}
    for crop in crops:
        seen.setdefault(crop.name, crop)
    return list(seen.values())


def _place(source: Path, target: Path) -> None:
    """A hard link when the file system allows it, else a copy; via a temporary name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def materialise(assembly: Assembly, library: Path, work: Path) -> Path:
    """Copy new crops into the library and lay out `work` in the station data layout."""
    library = Path(library)
    folders = {"train": "train/ok", "calibration_ok": "val/ok", "ko": "val/ko"}
    for role in ROLES:
        for crop in getattr(assembly, role):
            kept = library / crop.name
            if not kept.exists():
                _place(crop.source, kept)
            if role in folders:
                _place(kept, work / folders[role] / crop.name)
    if assembly.test_dir is not None:
        for sub in ("ok", "ko", "ko_masks"):
            for path in list_images(assembly.test_dir / sub):
                _place(path, work / "test" / sub / path.name)
    else:
        for role, sub in (("gate_ok", "ok"), ("ko", "ko")):
            for crop in getattr(assembly, role):
                _place(library / crop.name, work / "test" / sub / crop.name)
    return work


def collect_library(library: Path, keep: set[str]) -> int:
    """Delete library crops no kept training set names; returns how many went."""
    removed = 0
    for path in Path(library).glob("*.png") if Path(library).is_dir() else []:
        if path.name not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
