"""Typed experiment configuration: ``ExperimentConfig``, the solver/test configs, loading and dumping."""
