"""Parts shared by the detectors: backbones, patch embedding, coreset, early stopping, grid."""
