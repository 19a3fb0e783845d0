"""EfficientAD: `network.py` is the exported core (the method described there), `fit.py`
trains it."""

from trainer.detectors.efficientad.fit import fit, fit_medium, fit_small
from trainer.detectors.efficientad.network import EfficientAdCore

__all__ = ["EfficientAdCore", "fit", "fit_medium", "fit_small"]
