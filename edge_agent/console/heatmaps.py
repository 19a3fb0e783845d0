"""Heatmap overlays on demand: the kept crop scored again by the model version that judged it.

The agent publishes overlays only for NOK connectors and keeps none on disk; the same bundle
(onnxruntime, one thread) gives the same map, drawn on the agent's own colour scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.console.cache import LruCache
from edge_agent.console.images import ImageUnavailable
from edge_agent.contracts.bundle import BundleError, connector_dir, list_versions
from edge_agent.inspect.heatmap import overlay_heatmap
from edge_agent.inspect.imaging import encode_png
from edge_agent.inspect.scoring import ConnectorModel

CACHED_MODELS = 4


class HeatmapMaker:
    """Keeps a few loaded models; `overlay` returns a PNG."""

    def __init__(self, models_root: Path) -> None:
        self.models_root = Path(models_root)
        self._models = LruCache(CACHED_MODELS)

    def model(self, connector: str, version: str) -> ConnectorModel:
        if version not in list_versions(self.models_root, connector):
            raise ImageUnavailable(f"model {version} of {connector} is no longer installed")
        folder = connector_dir(self.models_root, connector) / version

        def load() -> ConnectorModel | str:
            try:
                return ConnectorModel.load(folder, threads=1)
            except BundleError as exc:
                return str(exc)

        model = self._models.get((connector, version), load)
        if isinstance(model, str):
            raise ImageUnavailable(f"model {version} of {connector} cannot be loaded: {model}")
        return model

    def overlay(self, connector: str, version: str, crop: np.ndarray) -> bytes:
        """PNG of the crop with its anomaly map (1.0 = threshold) blended over it."""
        model = self.model(connector, version)
        try:
            scored = model.score(crop)
        except ValueError as exc:
            raise ImageUnavailable(str(exc)) from None
        return encode_png(overlay_heatmap(crop, scored.amap))
