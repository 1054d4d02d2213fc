"""A Python config file (as ``dt train --config engine_tiny_config.py`` runs it): registers the tiny
datasets, then returns the tiny Mask R-CNN experiment."""

from pathlib import Path

from engine_tiny_datasets import register_tiny_datasets

from dt_engine.config.experiment import load_experiment

register_tiny_datasets()
config = load_experiment(Path(__file__).with_name("engine_tiny_rcnn.yaml"))
