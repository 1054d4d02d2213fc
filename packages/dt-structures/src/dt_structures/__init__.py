"""dt value types."""

from importlib.metadata import version

__version__ = version("dt-structures")
