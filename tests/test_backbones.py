"""Backbones run with the weights they claim: the shipped ImageNet file, or the user's file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from trainer.detectors.components.backbones import (
    BackboneError,
    build_backbone,
    efficientnet_lite0_weights,
)


def bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean")}
    return {**shapes, f"{prefix}.running_var": (channels,), f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet18_shapes() -> dict[str, tuple[int, ...]]:
    """Every key and shape of torchvision's resnet18 state_dict (resnet18-f37072fd.pth)."""
    shapes = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    inplanes = 64
    for layer, planes, stride in ((1, 64, 1), (2, 128, 2), (3, 256, 2), (4, 512, 2)):
        for block in range(2):
            p = f"layer{layer}.{block}"
            cin = inplanes if block == 0 else planes
            shapes[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            shapes |= bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            shapes |= bn(f"{p}.bn2", planes)
            if block == 0 and (stride != 1 or cin != planes):
                shapes[f"{p}.downsample.0.weight"] = (planes, cin, 1, 1)
                shapes |= bn(f"{p}.downsample.1", planes)
        inplanes = planes
    return {**shapes, "fc.weight": (1000, 512), "fc.bias": (1000,)}


def random_resnet18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet18_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


@pytest.fixture
def resnet18_file(tmp_path: Path) -> Path:
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(random_resnet18_state(), path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_efficientnet_uses_every_shipped_imagenet_tensor() -> None:
    path = efficientnet_lite0_weights()
    shipped = torch.load(path, map_location="cpu", weights_only=True)

    module, info = build_backbone("efficientnet-lite0", 128)

    own = module.state_dict()
    assert len(own) > 150  # stem + eleven blocks, not an empty shell
    for key, tensor in own.items():
        assert torch.equal(tensor, shipped[key]), key
    assert info.weights_file == path.name
    assert info.weights_sha256 == sha256(path)
    assert info.channels == (40, 112)


def test_efficientnet_features_have_the_documented_shapes() -> None:
    module, _ = build_backbone("efficientnet-lite0", 128)

    with torch.inference_mode():
        fine, coarse = module(torch.randn(1, 3, 128, 128))

    assert fine.shape == (1, 40, 16, 16)
    assert coarse.shape == (1, 112, 8, 8)
    assert not module.training
    assert not any(p.requires_grad for p in module.parameters())


def test_resnet18_loads_a_torchvision_format_file(resnet18_file: Path) -> None:
    saved = torch.load(resnet18_file, weights_only=True)

    module, info = build_backbone("resnet18", 128, resnet18_file)

    own = module.state_dict()
    assert set(own) <= set(saved)
    assert not any(key.startswith(("layer4.", "fc.")) for key in own)
    for key, tensor in own.items():
        assert torch.equal(tensor, saved[key]), key
    assert (info.weights_file, info.weights_sha256) == (resnet18_file.name, sha256(resnet18_file))
    with torch.inference_mode():
        layer2, layer3 = module(torch.randn(1, 3, 128, 128))
    assert (layer2.shape, layer3.shape) == ((1, 128, 16, 16), (1, 256, 8, 8))
    assert info.channels == (128, 256)


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"

    with pytest.raises(BackboneError, match="not found") as error:
        build_backbone("resnet18", 128, path)

    assert str(path) in str(error.value)


def test_resnet18_without_a_weights_file_says_which_setting_to_set() -> None:
    with pytest.raises(BackboneError, match=r"training\.backbone_weights"):
        build_backbone("resnet18", 128)


def test_wrong_shape_for_one_key_is_refused(tmp_path: Path) -> None:
    state = random_resnet18_state()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    path = tmp_path / "wrong-shape.pth"
    torch.save(state, path)

    with pytest.raises(BackboneError, match="shape mismatch") as error:
        build_backbone("resnet18", 128, path)

    assert str(path) in str(error.value)
    assert "layer2.0.conv1.weight" in str(error.value)


def test_missing_key_is_refused(tmp_path: Path) -> None:
    state = random_resnet18_state()
    del state["layer3.1.bn2.running_var"]
    path = tmp_path / "missing-key.pth"
    torch.save(state, path)

    with pytest.raises(BackboneError, match="missing") as error:
        build_backbone("resnet18", 128, path)

    assert str(path) in str(error.value)
    assert "layer3.1.bn2.running_var" in str(error.value)


def test_efficientnet_file_does_not_fit_resnet18() -> None:
    path = efficientnet_lite0_weights()

    with pytest.raises(BackboneError, match="do not fit") as error:
        build_backbone("resnet18", 128, path)

    assert str(path) in str(error.value)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def test_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({**random_resnet18_state(), "payload": _RunsCodeWhenUnpickled(marker)}, path)
    torch.load(path, weights_only=False)  # proof that the payload is live
    assert marker.is_dir()
    marker.rmdir()

    with pytest.raises(BackboneError, match="not a loadable weights file") as error:
        build_backbone("resnet18", 128, path)

    assert str(path) in str(error.value)
    assert not marker.exists()


def test_state_dict_with_a_non_tensor_value_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pth"
    torch.save({**random_resnet18_state(), "epoch": 90}, path)

    with pytest.raises(BackboneError, match="state_dict of tensors") as error:
        build_backbone("resnet18", 128, path)

    assert str(path) in str(error.value)


def test_unknown_backbone_is_named() -> None:
    with pytest.raises(BackboneError, match="'vgg16'"):
        build_backbone("vgg16", 128)
