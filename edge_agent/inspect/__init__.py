"""One image to a verdict: decode, register, crop, score, heatmaps."""
