"""edge-inspect's line agent and the model-bundle contract it shares with the trainer."""

__version__ = "0.1.0"
