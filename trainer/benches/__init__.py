"""Benchmarks of the running product on the synthetic station (speed, soak, retraining beside
the agent); their numbers go in docs/BENCHMARKS.md."""
