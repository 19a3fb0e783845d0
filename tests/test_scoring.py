"""Per-connector models: real onnxruntime scoring, refused bundles, and safe hot reload."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import (
    expected_outputs,
    install_bundle,
    install_template_model,
    make_manifest,
    model_bytes,
)
from structlog.testing import capture_logs

from edge_agent.contracts.bundle import MODEL_FILE, BundleError, activate, active_dir
from edge_agent.inspect.scoring import ConnectorModel, ModelRegistry

H, W, S = 24, 40, 16
RAW_THRESHOLD = 50.0


def template(value: float) -> np.ndarray:
    return np.full((H, W, 3), value, np.float32)


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


@pytest.fixture
def crop() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_score_matches_a_numpy_reimplementation(models_root: Path, crop: np.ndarray) -> None:
    bundle = install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    model = ConnectorModel.load(bundle, threads=1)

    result = model.score(crop)

    expected_map, expected_raw = expected_outputs(crop, template(100), S)
    assert (model.connector, model.version, model.path) == ("J1", "2026-01-01.1", bundle)
    assert result.raw_score == pytest.approx(expected_raw, rel=1e-5)
    assert result.score == pytest.approx(expected_raw / RAW_THRESHOLD, rel=1e-5)
    assert result.amap.dtype == np.float32 and result.amap.shape == (S, S)
    np.testing.assert_allclose(result.amap, expected_map / RAW_THRESHOLD, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "bad_crop",
    [
        np.zeros((W, H, 3), np.uint8),
        np.zeros((H + 1, W, 3), np.uint8),
        np.zeros((H, W), np.uint8),
        np.zeros((H, W, 3), np.float32),
    ],
    ids=["transposed", "one-row-more", "gray", "float"],
)
def test_crop_of_the_wrong_shape_is_an_error_not_a_resize(
    models_root: Path, bad_crop: np.ndarray
) -> None:
    bundle = install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    model = ConnectorModel.load(bundle, threads=1)

    with pytest.raises(
        ValueError, match=r"J1: crop .* does not match the model input \(24, 40, 3\)"
    ):
        model.score(bad_crop)


def test_tampered_model_is_refused_by_sha256(models_root: Path) -> None:
    bundle = install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    with open(bundle / MODEL_FILE, "ab") as handle:
        handle.write(b"\0")

    with pytest.raises(BundleError, match=r"model\.onnx: sha256 .* does not match"):
        ConnectorModel.load(bundle, threads=1)


def test_bundle_with_a_missing_file_is_refused(models_root: Path) -> None:
    bundle = install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    (bundle / MODEL_FILE).unlink()

    with pytest.raises(BundleError, match=r"model\.onnx: model file missing"):
        ConnectorModel.load(bundle, threads=1)


def test_graph_that_disagrees_with_its_manifest_is_refused(models_root: Path) -> None:
    onnx = model_bytes(template(100), S)
    taller = make_manifest("J1", "2026-01-01.1", H + 8, W, S, 50.0)
    other_size = make_manifest("J2", "2026-01-01.1", H, W, S * 2, 50.0)
    renamed = make_manifest("J3", "2026-01-01.1", H, W, S, 50.0)
    renamed.outputs["map"] = "heat"

    cases = [
        (taller, r"input 'crop' has shape \[1, 24, 40, 3\], manifest needs \[1, 32, 40, 3\]"),
        (other_size, r"output 'anomaly_map' has shape \[1, 16, 16\], manifest needs \[1, 32, 32\]"),
        (renamed, r"graph has no output 'heat'"),
    ]
    for manifest, message in cases:
        bundle = install_bundle(models_root, manifest, onnx, make_active=False)
        with pytest.raises(BundleError, match=message):
            ConnectorModel.load(bundle, threads=1)


def test_graph_onnxruntime_cannot_open_is_refused(models_root: Path) -> None:
    manifest = make_manifest("J1", "2026-01-01.1", H, W, S, 50.0)
    bundle = install_bundle(models_root, manifest, b"not an onnx graph", make_active=False)

    with pytest.raises(BundleError, match="onnxruntime cannot load the graph"):
        ConnectorModel.load(bundle, threads=1)


def test_load_all_reports_connectors_without_a_model(models_root: Path) -> None:
    install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    registry = ModelRegistry(models_root, ["J1", "J2"], threads=1)

    errors = registry.load_all()

    assert errors == {"J2": f"{models_root / 'J2' / 'active'}: no active model"}
    assert registry.get("J2") is None
    model = registry.get("J1")
    assert model is not None
    assert registry.versions() == {"J1": {"version": "2026-01-01.1", "sha256": model.sha256}}


def test_load_all_refuses_a_bundle_of_another_connector(models_root: Path) -> None:
    install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    (models_root / "J2").mkdir()
    os.symlink(models_root / "J1" / "2026-01-01.1", models_root / "J2" / "active")
    registry = ModelRegistry(models_root, ["J2"], threads=1)

    errors = registry.load_all()

    assert "manifest is for connector 'J1', not 'J2'" in errors["J2"]


def test_load_all_refuses_a_bundle_in_a_folder_of_another_version(models_root: Path) -> None:
    bundle = install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    bundle.rename(models_root / "J1" / "2026-01-05.1")
    activate(models_root, "J1", "2026-01-05.1")
    registry = ModelRegistry(models_root, ["J1"], threads=1)

    errors = registry.load_all()

    assert "manifest is for version '2026-01-01.1', not '2026-01-05.1'" in errors["J1"]


def test_activating_a_new_version_swaps_it_in_on_refresh(
    models_root: Path, crop: np.ndarray
) -> None:
    install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    registry = ModelRegistry(models_root, ["J1"], threads=1)
    assert registry.load_all() == {}
    in_flight = registry.get("J1")
    assert in_flight is not None
    install_template_model(models_root, "J1", "2026-01-02.1", template(120), S, 50.0)

    changes = registry.refresh()

    assert [(c.connector, c.old_version, c.new_version, c.accepted) for c in changes] == [
        ("J1", "2026-01-01.1", "2026-01-02.1", True)
    ]
    current = registry.get("J1")
    assert current is not None and current.version == "2026-01-02.1"
    assert registry.refresh() == []
    _, old_raw = expected_outputs(crop, template(100), S)
    assert in_flight.score(crop).raw_score == pytest.approx(old_raw, rel=1e-5)


def test_activating_a_broken_version_keeps_the_old_model(models_root: Path) -> None:
    install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    registry = ModelRegistry(models_root, ["J1"], threads=1)
    registry.load_all()
    broken = make_manifest("J1", "2026-01-02.1", H + 8, W, S, 50.0)
    install_bundle(models_root, broken, model_bytes(template(100), S))

    with capture_logs() as logs:
        changes = registry.refresh()
        again = registry.refresh()

    assert len(changes) == 1 and not changes[0].accepted
    assert "manifest needs [1, 32, 40, 3]" in (changes[0].error or "")
    assert again == []
    kept = registry.get("J1")
    assert kept is not None and kept.version == "2026-01-01.1"
    refused = [entry for entry in logs if entry["event"] == "model_refused"]
    assert len(refused) == 1
    assert refused[0]["log_level"] == "error"
    assert refused[0]["kept_version"] == "2026-01-01.1"
    assert "2026-01-02.1" in refused[0]["path"]

    install_template_model(models_root, "J1", "2026-01-03.1", template(120), S, 50.0)
    assert [c.accepted for c in registry.refresh()] == [True]
    fixed = registry.get("J1")
    assert fixed is not None and fixed.version == "2026-01-03.1"


def test_refresh_while_scoring_from_another_thread(models_root: Path, crop: np.ndarray) -> None:
    values = {"2026-01-01.1": 100.0, "2026-01-02.1": 120.0}
    for version, value in values.items():
        install_template_model(models_root, "J1", version, template(value), S, 50.0)
    expected = {v: expected_outputs(crop, template(x), S)[1] for v, x in values.items()}
    registry = ModelRegistry(models_root, ["J1"], threads=1)
    registry.load_all()
    stop = threading.Event()
    seen: list[str] = []
    failures: list[str] = []

    def score_boards() -> None:
        while not stop.is_set():
            model = registry.get("J1")
            if model is None:
                failures.append("no model while swapping")
                continue
            raw = model.score(crop).raw_score
            if abs(raw - expected[model.version]) > 1e-3:
                failures.append(f"{model.version}: {raw} != {expected[model.version]}")
            seen.append(model.version)

    def wait_for_boards(count: int) -> None:
        target = len(seen) + count
        deadline = time.monotonic() + 10
        while len(seen) < target and time.monotonic() < deadline:
            time.sleep(0.001)

    worker = threading.Thread(target=score_boards)
    worker.start()
    try:
        for swap in range(20):
            activate(models_root, "J1", list(values)[swap % 2])
            assert all(change.accepted for change in registry.refresh())
            wait_for_boards(2)
    finally:
        stop.set()
        worker.join(timeout=30)

    assert failures == []
    assert set(seen) == set(values)
    current = active_dir(models_root, "J1")
    assert current is not None and current.name == "2026-01-02.1"


def test_load_all_refuses_a_bundle_of_another_crop_size_in_one_line(models_root: Path) -> None:
    install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    registry = ModelRegistry(models_root, ["J1"], threads=1, crop_sizes={"J1": (H + 8, W)})

    with capture_logs() as logs:
        errors = registry.load_all()

    assert registry.get("J1") is None
    assert "does not fit its connector" in errors["J1"]
    assert f"input is {W}x{H} (width x height), connectors.J1.box cuts {W}x{H + 8}" in errors["J1"]
    refused = [e for e in logs if e["event"] == "model_refused"]
    assert len(refused) == 1 and refused[0]["path"] == str(models_root / "J1" / "2026-01-01.1")


def test_a_bundle_of_another_crop_size_leaves_the_running_model(
    models_root: Path, crop: np.ndarray
) -> None:
    install_template_model(models_root, "J1", "2026-01-01.1", template(100), S, 50.0)
    registry = ModelRegistry(models_root, ["J1"], threads=1, crop_sizes={"J1": (H, W)})
    assert registry.load_all() == {}
    wider = np.full((H, W + 8, 3), 100, np.float32)
    install_template_model(models_root, "J1", "2026-01-02.1", wider, S, 50.0)

    (change,) = registry.refresh()

    assert not change.accepted and "does not fit its connector" in str(change.error)
    model = registry.get("J1")
    assert model is not None and model.version == "2026-01-01.1"
    assert model.score(crop).raw_score > 0
    assert registry.refresh() == []  # refused once, not again on every pass
