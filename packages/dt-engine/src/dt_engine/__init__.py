"""dt-engine: typed experiment config, hook trainer, checkpointer, DDP launch, writers, the dt command."""

from importlib.metadata import version

__version__ = version("dt-engine")
