"""EfficientAD on small generated crops: finds a painted defect, exports, stops early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from detector_checks import (
    H,
    Trained,
    W,
    assert_defect_stands_out,
    assert_onnx_reproduces_torch,
    defective_crop,
    fit_with_backbone,
    train_and_export,
    train_command_bundle,
)

from trainer.detectors import DETECTORS
from trainer.detectors.components.backbones import build_backbone
from trainer.detectors.efficientad import EfficientAdCore, fit, fit_medium, fit_small
from trainer.export import check_parity, export_onnx, onnx_scores, torch_scores
from trainer.graph import AnomalyGraph
from trainer.quantize import convs_of
from trainer.settings import TrainingSettings
from trainer.train_connector import write_model

SIZE = 64


def fit_core(
    settings: TrainingSettings, inputs: torch.Tensor, variant: str = "s"
) -> EfficientAdCore:
    return fit_with_backbone(fit, settings, inputs, variant)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    settings = TrainingSettings(
        method="efficientad-s",
        input_size=SIZE,
        ead_steps=80,
        ead_eval_every=20,
        ead_patience=4,
        ead_batch=4,
    )
    return train_and_export(fit, settings, tmp_path_factory.mktemp("efficientad"))


def test_the_core_maps_an_image_to_one_score_map_on_the_stride_8_grid(trained: Trained) -> None:
    core = trained.graph.core
    with torch.inference_mode():
        amap = core(trained.inputs[:1])

    assert amap.shape == (1, 1, SIZE // 8, SIZE // 8)
    assert bool(torch.all(amap >= 0))
    assert core.channels == 152 and core.teacher_mean.shape == (1, 152, 1, 1)
    for quantiles in (core.local_quantiles, core.global_quantiles):
        assert 0 <= float(quantiles[0]) < float(quantiles[1])
    assert [entry["step"] for entry in core.history] == [20, 40, 60, 80]
    assert core.best_step in (20, 40, 60, 80)


def test_painted_defect_scores_clearly_above_held_out_ok(trained: Trained) -> None:
    assert_defect_stands_out(trained.graph, trained.holdout, ratio=1.5, within_px=12)


def test_onnx_passes_parity_and_reproduces_torch_scores(trained: Trained) -> None:
    tolerance = trained.settings.parity_tolerance
    assert_onnx_reproduces_torch(trained.graph, trained.onnx_path, trained.holdout, tolerance, 1e-4)


def test_the_model_file_runs_student_and_autoencoder_in_int8_and_keeps_the_teacher_float(
    trained: Trained, tmp_path: Path
) -> None:
    path = tmp_path / "model.onnx"
    train_crops = np.stack([defective_crop(), *trained.holdout])

    written = write_model(trained.graph, path, train_crops, trained.holdout, trained.settings)

    model = onnx.load(str(path))
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    weights = {name.removesuffix("_quantized") for name in quantized}
    student_convs = convs_of(model, ("core.student.",))  # still Conv nodes, fed by QDQ pairs
    assert written["int8_convs"] == 17 and len(student_convs) == 4
    assert {"core.student.0.weight", "core.autoencoder.head.2.weight"} <= weights
    assert not any(name.startswith("core.teacher.") for name in weights)
    assert written["parity_max_relative_error"] <= trained.settings.parity_tolerance
    # int8 moves the scores a little next to a defect's, not the ranking: the defect still
    # stands well out. (OK scores sit near the map's clamp at 0, too small to be the scale.)
    crops = np.concatenate([trained.holdout, defective_crop()[None]])
    expected, _ = torch_scores(trained.graph, crops)
    got = onnx_scores(path, crops)
    defect = expected[-1]
    assert 0 < written["int8_max_score_change"] < 0.25 * defect
    np.testing.assert_allclose(got, expected, atol=0.25 * defect)
    assert got[-1] > 1.5 * got[:-1].max()


def test_int8_can_be_switched_off(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    settings = trained.settings.model_copy(update={"int8": False})

    written = write_model(trained.graph, path, trained.holdout, trained.holdout, settings)

    assert set(written) == {"parity_max_relative_error"}
    assert not any(n.op_type == "DequantizeLinear" for n in onnx.load(str(path)).graph.node)


def test_early_stopping_restores_the_best_held_out_state(trained: Trained) -> None:
    """A very high learning rate soon makes the held-out loss rise again."""
    settings = trained.settings.model_copy(
        update={"ead_steps": 30, "ead_eval_every": 2, "ead_patience": 2, "ead_lr": 0.05}
    )

    core = fit_core(settings, trained.inputs[:12])

    losses = [entry["val_loss"] for entry in core.history]
    steps = [entry["step"] for entry in core.history]
    assert steps[-1] < settings.ead_steps  # stopped early
    assert core.best_step < steps[-1]  # ... after evaluations worse than the best
    assert core.best_val_loss == min(losses) == losses[steps.index(core.best_step)]
    assert all(loss > core.best_val_loss for loss in losses[steps.index(core.best_step) + 1 :])
    held_out = trained.inputs[:12][core.holdout_indices]
    teacher = (core.teacher(held_out) - core.teacher_mean) / core.teacher_std
    assert core.evaluate_loss(held_out, teacher) == pytest.approx(core.best_val_loss, rel=1e-5)


def test_the_same_seed_gives_the_same_weights_and_another_seed_others(trained: Trained) -> None:
    settings = trained.settings.model_copy(update={"ead_steps": 3, "ead_eval_every": 3})
    inputs = trained.inputs[:12]

    first = fit_core(settings, inputs).state_dict()
    again = fit_core(settings, inputs).state_dict()
    other = fit_core(settings.model_copy(update={"seed": 1}), inputs).state_dict()

    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["student.0.weight"], other["student.0.weight"])
    assert not torch.equal(first["autoencoder.head.2.weight"], other["autoencoder.head.2.weight"])


def test_the_medium_student_builds_and_exports_with_parity(
    trained: Trained, tmp_path: Path
) -> None:
    settings = trained.settings.model_copy(
        update={"method": "efficientad-m", "ead_steps": 4, "ead_eval_every": 2}
    )
    backbone, _ = build_backbone(settings.backbone, SIZE)

    core = fit_medium(trained.inputs[:8], backbone, settings)

    widths = [m.out_channels for m in core.student.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [256, 512, 512, 512, 304, 304]
    graph = AnomalyGraph(trained.graph.preprocess, core, trained.graph.postprocess).eval()
    path = tmp_path / "model.onnx"
    export_onnx(graph, (H, W), path)
    crops = np.concatenate([trained.holdout[:3], defective_crop()[None]])
    assert check_parity(graph, path, crops, settings.parity_tolerance) <= settings.parity_tolerance


def test_efficientad_methods_are_registered_with_bounded_settings() -> None:
    defaults = TrainingSettings()

    assert DETECTORS["efficientad-s"] is fit_small and DETECTORS["efficientad-m"] is fit_medium
    assert TrainingSettings(method="efficientad-m").method == "efficientad-m"
    assert defaults.ead_steps >= 1 and defaults.ead_patience >= 1 and defaults.ead_batch >= 1
    bad_values = ({"ead_steps": 0}, {"ead_patience": 0}, {"ead_batch": 0}, {"ead_lr": 0})
    for bad in (*bad_values, {"ead_eval_every": 0}):
        with pytest.raises(ValueError):
            TrainingSettings(**bad)
    with pytest.raises(ValueError, match="variant"):
        fit(torch.zeros(4, 3, SIZE, SIZE), torch.nn.Identity(), defaults, "l")


@pytest.mark.slow
def test_train_command_installs_an_efficientad_bundle_ok_only_without_cross_fitting(
    tmp_path: Path,
) -> None:
    manifest = train_command_bundle(tmp_path, "efficientad-s", "--ead-steps", "20", connector="J4")

    assert manifest.training.params["ead_steps"] == 20
    assert manifest.calibration.mode == "ok-only"
    assert manifest.calibration.n_ok == manifest.training.n_holdout_ok
    assert "out-of-fold" not in manifest.calibration.guarantee  # a trained detector: no 2 more fits
    assert manifest.training.params["int8_convs"] == 17
