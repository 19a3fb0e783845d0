"""Studies over many trainings: detector comparison, robustness to shifts, one global model."""
