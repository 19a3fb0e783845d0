"""Model lifecycle, shadow scoring and the loop from verdicts back to training data."""
