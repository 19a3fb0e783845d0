"""The autoencoder detector: `network.py` is the exported core (the method described there),
`fit.py` trains it."""

from trainer.detectors.autoencoder.fit import fit
from trainer.detectors.autoencoder.network import AutoencoderCore

__all__ = ["AutoencoderCore", "fit"]
