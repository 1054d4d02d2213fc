"""dt's config layer, shared by every dt package: typed configs, one error dialect, registries.

* ``structure``/``unstructure`` through the one ``converter`` (strict scalars, tagged unions);
* ``ConfigError``: every problem as one line ``$.full.path: expected ..., got ... (did you mean ...)``;
* ``validators``: attrs field validators that report at the field's own path;
* ``Registry``: names -> config class + build function, with entry-point discovery;
* ``loading``: YAML files with ``_base_``, Python config files, dotted overrides;
* ``did_you_mean`` and the rank/world-size helpers every package needs once.
"""

from importlib.metadata import version as _version

from . import validators
from .converter import Tagged, converter, register_tagged_union, structure, unstructure
from .dist import get_rank, get_world_size, is_main_process
from .errors import ConfigError, ConfigProblem, describe
from .loading import apply_overrides, dump_yaml, load_config, load_yaml_tree, merge_trees, parse_override
from .registry import Registry, RegistryEntry, load_entry_points
from .suggest import close_matches, did_you_mean

__version__ = _version("dt-config")

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "Registry",
    "RegistryEntry",
    "Tagged",
    "__version__",
    "apply_overrides",
    "close_matches",
    "converter",
    "describe",
    "did_you_mean",
    "dump_yaml",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "load_config",
    "load_entry_points",
    "load_yaml_tree",
    "merge_trees",
    "parse_override",
    "register_tagged_union",
    "structure",
    "unstructure",
    "validators",
]
