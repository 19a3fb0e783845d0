"""Scoring a data set through a bundle, metrics, reports and result tables."""
