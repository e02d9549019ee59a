"""Uncertainty: the spec, sampling, Monte Carlo, sensitivity and their results."""
