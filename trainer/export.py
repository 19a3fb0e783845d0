"""ONNX export of an anomaly graph, refused unless onnxruntime reproduces torch's scores."""

from __future__ import annotations

import io
import logging
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

INPUT_NAME = "crop"
OUTPUT_NAMES = ("anomaly_map", "score")


class ExportError(RuntimeError):
    """The exported graph does not reproduce the trained model."""


def export_onnx(graph: nn.Module, crop_shape: tuple[int, int], path: Path) -> None:
    """Write one self-contained model.onnx taking a (1, H, W, 3) uint8 BGR crop."""
    example = torch.zeros((1, *crop_shape, 3), dtype=torch.uint8)
    graph.eval()
    # The exporter is chatty on stdout and warns about things that do not apply here.
    for name in ("torch.onnx", "onnx_ir", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamo=True,
            external_data=False,
            optimize=True,
        )


def torch_scores(graph: nn.Module, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores (N,) and maps (N, S, S) of (N, H, W, 3) uint8 crops, computed by torch."""
    scores, maps = [], []
    if len(crops) == 0:
        return np.zeros(0), np.zeros((0, 0, 0), np.float32)
    with torch.inference_mode():
        for crop in crops:
            amap, score = graph(torch.from_numpy(crop[None]))
            scores.append(float(score[0]))
            maps.append(amap[0].numpy())
    return np.array(scores), np.stack(maps)


def onnx_scores(path: Path, crops: np.ndarray) -> np.ndarray:
    """Scores (N,) of (N, H, W, 3) uint8 crops, computed by onnxruntime from `path`."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.array([float(session.run(["score"], {INPUT_NAME: c[None]})[0][0]) for c in crops])


def check_parity(graph: nn.Module, path: Path, crops: np.ndarray, tolerance: float) -> float:
    """Largest relative score difference between torch and onnxruntime; ExportError above tol."""
    got, expected = onnx_scores(path, crops), torch_scores(graph, crops)[0]
    worst = float(np.max(np.abs(got - expected) / np.maximum(np.abs(expected), 1e-6)))
    if worst > tolerance:
        raise ExportError(
            f"{path}: onnxruntime scores differ from torch by {worst:.2e} (tolerance {tolerance})"
        )
    return worst
