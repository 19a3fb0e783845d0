"""The bundle contract: version names, atomic publish/activate, integrity checks, atomic JSON."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.bundle import (
    ACTIVE_LINK,
    MANIFEST_FILE,
    MODEL_FILE,
    BundleError,
    Calibration,
    InputSpec,
    Manifest,
    TrainingInfo,
    activate,
    active_dir,
    list_versions,
    next_version,
    publish_bundle,
    verify_bundle,
)
from edge_agent.contracts.clock import utc_now

CONNECTOR = "J1"
DAY = dt.date(2026, 3, 14)


def identity_onnx() -> bytes:
    """A real, tiny ONNX graph (crop -> Identity): enough to exercise the file contract."""
    crop = helper.make_tensor_value_info("crop", TensorProto.UINT8, [1, 8, 8, 3])
    out = helper.make_tensor_value_info("out", TensorProto.UINT8, [1, 8, 8, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["crop"], ["out"])], "g", [crop], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def manifest_for(version: str, onnx_bytes: bytes) -> Manifest:
    return Manifest(
        connector=CONNECTOR,
        version=version,
        method="identity",
        backbone="none",
        model_input_size=8,
        color_mode="gray",
        input=InputSpec(height=8, width=8),
        roi_mask_id="full",
        calibration=Calibration(
            mode="ok-only", raw_threshold=2.0, n_ok=10, n_ko=0, guarantee="test"
        ),
        training=TrainingInfo(
            data_sha256="0" * 64, n_train=8, n_holdout_ok=2, n_holdout_ko=0, seconds=0.1
        ),
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        parity_tolerance=1e-3,
        created_at=utc_now(),
    )


def stage(models_root: Path, version: str) -> Path:
    """A complete bundle in a hidden staging folder next to the versions, as the trainer does."""
    staging = models_root / CONNECTOR / f".staging-{version}-{os.getpid()}"
    staging.mkdir(parents=True)
    model = identity_onnx()
    (staging / MODEL_FILE).write_bytes(model)
    write_json_atomic(staging / MANIFEST_FILE, manifest_for(version, model).dump())
    return staging


def install(models_root: Path, version: str) -> Path:
    return publish_bundle(stage(models_root, version), models_root, CONNECTOR, version)


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_first_version_of_a_day_is_numbered_one(models_root: Path) -> None:
    assert next_version(models_root, CONNECTOR, DAY) == "2026-03-14.1"


def test_versions_count_up_numerically_within_a_day(models_root: Path) -> None:
    for counter in (1, 2, 9, 10):
        (models_root / CONNECTOR / f"2026-03-14.{counter}").mkdir(parents=True)
    (models_root / CONNECTOR / "2026-03-13.40").mkdir()

    assert next_version(models_root, CONNECTOR, DAY) == "2026-03-14.11"
    assert next_version(models_root, CONNECTOR, dt.date(2026, 3, 15)) == "2026-03-15.1"
    assert list_versions(models_root, CONNECTOR)[-3:] == [
        "2026-03-14.2",
        "2026-03-14.9",
        "2026-03-14.10",
    ]


def test_publish_moves_the_whole_staging_folder_into_place(models_root: Path) -> None:
    staging = stage(models_root, "2026-03-14.1")

    final = publish_bundle(staging, models_root, CONNECTOR, "2026-03-14.1")

    assert final == models_root / CONNECTOR / "2026-03-14.1"
    assert not staging.exists()
    assert verify_bundle(final).version == "2026-03-14.1"
    assert sorted(p.name for p in final.iterdir()) == [MANIFEST_FILE, MODEL_FILE]


def test_publishing_an_existing_version_is_refused(models_root: Path) -> None:
    install(models_root, "2026-03-14.1")
    staging = stage(models_root, "2026-03-14.1")

    with pytest.raises(BundleError, match="already exists"):
        publish_bundle(staging, models_root, CONNECTOR, "2026-03-14.1")

    assert staging.is_dir()  # nothing was moved over the installed version


def test_activate_switches_a_relative_active_symlink(models_root: Path) -> None:
    first = install(models_root, "2026-03-14.1")
    second = install(models_root, "2026-03-14.2")
    link = models_root / CONNECTOR / ACTIVE_LINK

    activate(models_root, CONNECTOR, "2026-03-14.1")
    assert link.is_symlink() and os.readlink(link) == "2026-03-14.1"
    assert active_dir(models_root, CONNECTOR) == first.resolve()

    activate(models_root, CONNECTOR, "2026-03-14.2")
    assert os.readlink(link) == "2026-03-14.2"
    assert active_dir(models_root, CONNECTOR) == second.resolve()
    # No temporary link left behind by the rename.
    assert sorted(p.name for p in link.parent.iterdir()) == [
        "2026-03-14.1",
        "2026-03-14.2",
        ACTIVE_LINK,
    ]


def test_active_link_survives_moving_the_models_folder(models_root: Path, tmp_path: Path) -> None:
    install(models_root, "2026-03-14.1")
    activate(models_root, CONNECTOR, "2026-03-14.1")

    moved = tmp_path / "moved-models"
    models_root.rename(moved)

    assert active_dir(moved, CONNECTOR) == (moved / CONNECTOR / "2026-03-14.1").resolve()


def test_no_active_bundle_before_activation(models_root: Path) -> None:
    install(models_root, "2026-03-14.1")

    assert active_dir(models_root, CONNECTOR) is None


def test_a_tampered_model_is_refused_and_not_activated(models_root: Path) -> None:
    good = install(models_root, "2026-03-14.1")
    activate(models_root, CONNECTOR, "2026-03-14.1")
    tampered = install(models_root, "2026-03-14.2")
    model = tampered / MODEL_FILE
    model.write_bytes(model.read_bytes() + b"\x00")

    with pytest.raises(BundleError, match=r"sha256 \w+\.\.\. does not match") as error:
        verify_bundle(tampered)
    assert str(model) in str(error.value)

    with pytest.raises(BundleError):
        activate(models_root, CONNECTOR, "2026-03-14.2")
    assert active_dir(models_root, CONNECTOR) == good.resolve()


def test_a_missing_manifest_is_refused(models_root: Path) -> None:
    bundle = install(models_root, "2026-03-14.1")
    (bundle / MANIFEST_FILE).unlink()

    with pytest.raises(BundleError, match="manifest missing") as error:
        verify_bundle(bundle)

    assert str(bundle / MANIFEST_FILE) in str(error.value)


def test_a_missing_model_is_refused(models_root: Path) -> None:
    bundle = install(models_root, "2026-03-14.1")
    (bundle / MODEL_FILE).unlink()

    with pytest.raises(BundleError, match="model file missing") as error:
        verify_bundle(bundle)

    assert str(bundle / MODEL_FILE) in str(error.value)


def test_a_manifest_with_an_unknown_field_is_refused(models_root: Path) -> None:
    bundle = install(models_root, "2026-03-14.1")
    data = json.loads((bundle / MANIFEST_FILE).read_text())
    data["thresold"] = 0.5
    (bundle / MANIFEST_FILE).write_text(json.dumps(data))

    with pytest.raises(BundleError, match="invalid manifest") as error:
        verify_bundle(bundle)
    assert str(bundle / MANIFEST_FILE) in str(error.value)


def test_staging_and_other_folders_are_not_versions(models_root: Path) -> None:
    install(models_root, "2026-03-14.2")
    install(models_root, "2026-03-14.1")
    activate(models_root, CONNECTOR, "2026-03-14.2")
    stage(models_root, "2026-03-14.3")  # an interrupted run's staging folder
    (models_root / CONNECTOR / "notes").mkdir()

    assert list_versions(models_root, CONNECTOR) == ["2026-03-14.1", "2026-03-14.2"]
    assert next_version(models_root, CONNECTOR, DAY) == "2026-03-14.3"
    assert list_versions(models_root, "unknown-connector") == []


def test_write_json_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text('{"old": true}')

    write_json_atomic(target, {"counter": 3, "names": ["a", "b"]})

    assert json.loads(target.read_text()) == {"counter": 3, "names": ["a", "b"]}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_json_atomic_writes_prepared_text_verbatim(tmp_path: Path) -> None:
    manifest = manifest_for("2026-03-14.1", identity_onnx())
    target = tmp_path / MANIFEST_FILE

    write_json_atomic(target, manifest.dump())

    assert Manifest.model_validate_json(target.read_bytes()) == manifest
    assert json.loads(target.read_text())["schema"] == "edge-inspect.bundle/1"
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]
