"""Static int8 quantisation of a detector's trained sub-networks inside an exported graph.

Only the convolutions whose weights belong to the named sub-networks are quantised (QDQ,
per-channel int8 weights, uint8 activations with ranges observed on OK crops); the rest of
the graph (pre-processing, a frozen teacher, map normalisation, ROI weighting) stays float.
On a CPU with int8 dot-product instructions this runs those convolutions ~3x faster. Scores
move by about a percent, so the threshold must be calibrated on the quantised model's scores.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

from trainer.export import INPUT_NAME

CALIBRATION_CROPS = 32


class _Crops(CalibrationDataReader):
    """Feeds (H, W, 3) uint8 crops one by one to the calibration run."""

    def __init__(self, crops: np.ndarray) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter({INPUT_NAME: c[None]} for c in crops)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def convs_of(model: onnx.ModelProto, prefixes: tuple[str, ...]) -> list[str]:
    """Names of the Conv nodes whose weight initializer starts with one of `prefixes`."""
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "Conv" and node.input[1].startswith(prefixes)
    ]


def quantize_convs(path: Path, crops: np.ndarray, prefixes: tuple[str, ...]) -> int:
    """Quantise, in place, the Conv nodes of `path` under `prefixes`; returns how many."""
    nodes = convs_of(onnx.load(str(path)), prefixes)
    if not nodes:
        raise ValueError(f"{path}: no convolution under {prefixes} to quantise")
    # The quantiser advises a shape-inference pre-pass on the root logger; the graph is already
    # shape-inferred by the exporter.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="int8-", dir=path.parent) as work:
            quantized = Path(work) / path.name
            quantize_static(
                str(path),
                str(quantized),
                _Crops(crops[:CALIBRATION_CROPS]),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_quantize=nodes,
            )
            quantized.replace(path)
    finally:
        root.setLevel(level)
    return len(nodes)
